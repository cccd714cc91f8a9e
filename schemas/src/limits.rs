//! The limits of what an event may hold, shared by every decoder (the reference path, the
//! typed fast path, OTLP).

/// Longest accepted message value, in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 8 * 1024 * 1024;
/// Longest accepted identifier-like string (service, name, host, label value, ...), in bytes.
pub const MAX_STRING_BYTES: usize = 1024;
/// Longest accepted log message, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Most entries accepted in `labels`, `attributes` or `tags`.
pub const MAX_MAP_ENTRIES: usize = 64;
