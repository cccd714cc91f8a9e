//! Lake state keys that more than one role reads: what one role records in the log's state and
//! another shows or alerts on. A key read by its writer only stays with it.

/// Prefix of the records of cumulative OTLP histogram series seen on a second partition of
/// their topic (`ingest.otlp_split/<topic>` = the last such series, its partitions and when),
/// written by ingest, shown by `/api/v1/pipeline` and alerted on (`OpslakePipeline`).
pub const OTLP_SPLIT_PREFIX: &str = "ingest.otlp_split/";

/// Prefix of the processor's quarantined inputs (`processor.quarantine/<job>/<file>` = why and
/// when): files a job could not fold and goes on without, shown by `/api/v1/pipeline` and
/// alerted on (`OpslakePipeline`).
pub const QUARANTINE_PREFIX: &str = "processor.quarantine/";

/// The alerts job's book (alert states, rule errors, the consumer backlog it measured).
pub const ALERT_BOOK: &str = "alerts.book";
