//! Arrow schemas of the raw tables (CONTRACT section 3). Files hold these columns; the lake's
//! `date=YYYY-MM-DD/hour=HH` directories add the partition columns `date` and `hour`.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

/// Time zone of every timestamp column.
pub const TZ: &str = "UTC";

/// `TIMESTAMP(ms) UTC`, the type of every time column.
pub fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some(TZ.into()))
}

/// `MAP<VARCHAR, VARCHAR>`, the type of labels, attributes and tags; the field names are those
/// of arrow's `MapBuilder` so that built arrays match the schema exactly.
pub fn string_map() -> DataType {
    let entries = Field::new(
        "entries",
        DataType::Struct(Fields::from(vec![
            Field::new("keys", DataType::Utf8, false),
            Field::new("values", DataType::Utf8, true),
        ])),
        false,
    );
    DataType::Map(Arc::new(entries), false)
}

/// The provenance columns every raw table ends with: a row's origin in Kafka.
pub fn provenance() -> Vec<Field> {
    vec![
        Field::new("_topic", DataType::Utf8, false),
        Field::new("_partition", DataType::Int32, false),
        Field::new("_offset", DataType::Int64, false),
        Field::new("_index", DataType::Int32, false),
        Field::new("_ingested_at", ts(), false),
    ]
}

fn with_provenance(mut fields: Vec<Field>) -> SchemaRef {
    fields.extend(provenance());
    Arc::new(Schema::new(fields))
}

fn s(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

/// Schema of the `metrics` table.
pub fn metrics() -> SchemaRef {
    with_provenance(vec![
        Field::new("timestamp", ts(), false),
        s("service", false),
        s("name", false),
        Field::new("value", DataType::Float64, false),
        s("unit", true),
        s("kind", false),
        s("host", true),
        s("version", true),
        Field::new("labels", string_map(), false),
        // The series' identity in one string (`crate::series`); null in files written before
        // it existed.
        s("series", true),
    ])
}

/// Schema of the `metric_histograms` table: one row per OpenTelemetry histogram point (as a
/// delta: cumulative points are turned into the change since the series' previous point), its
/// values in a DDSketch that merges with the rollups' sketches.
pub fn metric_histograms() -> SchemaRef {
    with_provenance(vec![
        Field::new("timestamp", ts(), false),
        // The start of the interval the point counts (its previous point's time, or the
        // series' start); null when not known.
        Field::new("start_time", ts(), true),
        s("service", false),
        s("name", false),
        s("unit", true),
        s("host", true),
        s("version", true),
        Field::new("labels", string_map(), false),
        Field::new("count", DataType::Int64, false),
        Field::new("sum", DataType::Float64, true),
        Field::new("min", DataType::Float64, true),
        Field::new("max", DataType::Float64, true),
        // `explicit` or `exponential`: the kind of buckets the point came with.
        s("buckets", false),
        Field::new("sketch", DataType::Binary, false),
        s("series", false),
    ])
}

/// Schema of the `logs` table.
pub fn logs() -> SchemaRef {
    with_provenance(vec![
        Field::new("timestamp", ts(), false),
        s("service", false),
        s("level", false),
        s("message", false),
        s("host", true),
        s("version", true),
        s("trace_id", true),
        Field::new("duration_ms", DataType::Float64, true),
        Field::new("status_code", DataType::Int32, true),
        Field::new("attributes", string_map(), false),
    ])
}

/// Schema of the `billing` table.
pub fn billing() -> SchemaRef {
    with_provenance(vec![
        Field::new("charge_period_start", ts(), false),
        Field::new("charge_period_end", ts(), false),
        s("provider", false),
        s("service", true),
        s("service_category", true),
        s("resource_id", true),
        s("resource_type", true),
        s("region", true),
        Field::new("usage_quantity", DataType::Float64, true),
        s("usage_unit", true),
        Field::new("cost", DataType::Float64, false),
        Field::new("effective_cost", DataType::Float64, false),
        s("currency", false),
        s("charge_category", true),
        Field::new("utilization", DataType::Float64, true),
        Field::new("tags", string_map(), false),
        Field::new("extra", string_map(), false),
    ])
}

/// Schema of the `dead_letters` table: one row per refused item.
pub fn dead_letters() -> SchemaRef {
    with_provenance(vec![
        Field::new("received_at", ts(), false),
        s("topic", false),
        Field::new("partition", DataType::Int32, false),
        Field::new("offset", DataType::Int64, false),
        s("key", true),
        s("payload", false),
        s("error", false),
    ])
}

/// The raw tables: (name, schema).
pub fn raw_tables() -> Vec<(&'static str, SchemaRef)> {
    vec![
        ("metrics", metrics()),
        ("metric_histograms", metric_histograms()),
        ("logs", logs()),
        ("billing", billing()),
        ("dead_letters", dead_letters()),
    ]
}

/// The columns compaction sorts a table's merged files by, in order: the ones of `service`,
/// `name`, `level`, `provider` and the time columns that `schema` has. Rows of one service lie
/// together, in time order, so a filter on a service or a time range skips most row groups and
/// pages by their statistics.
pub fn cluster_columns(schema: &Schema) -> Vec<&'static str> {
    const ORDER: [&str; 8] = [
        "service",
        "name",
        "level",
        "provider",
        "timestamp",
        "window_start",
        "charge_period_start",
        "received_at",
    ];
    ORDER
        .into_iter()
        .filter(|c| schema.field_with_name(c).is_ok())
        .collect()
}

/// Columns of a metric rollup table (`metric_rollups_1m`, `metric_rollups_1h`): one row per
/// window, series (service, name, labels) and version. `sketch` is a DDSketch (1% relative
/// accuracy) that `quantile_merge(sketch, q)` merges in SQL.
pub fn metric_rollups() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("window_start", ts(), false),
        Field::new("window_end", ts(), false),
        s("service", false),
        s("name", false),
        s("version", true),
        Field::new("labels", string_map(), false),
        Field::new("count", DataType::Int64, false),
        Field::new("sum", DataType::Float64, false),
        Field::new("min", DataType::Float64, false),
        Field::new("max", DataType::Float64, false),
        Field::new("mean", DataType::Float64, false),
        Field::new("p50", DataType::Float64, false),
        Field::new("p90", DataType::Float64, false),
        Field::new("p95", DataType::Float64, false),
        Field::new("p99", DataType::Float64, false),
        Field::new("sketch", DataType::Binary, false),
    ]))
}

/// Columns of `log_rollups_1m`: one row per window and service. `error_count` counts `error`
/// and `fatal`; `error_rate` is `error_count / count`. Duration percentiles cover the logs that
/// carry `duration_ms` (null when none does); `duration_sketch` merges with `quantile_merge`.
/// Beyond the contract: `bad_count`, the events of level `error` or `fatal` or with a
/// `status_code` of 500 or more, what an `errors` SLO counts as bad (null in rows written before
/// it existed).
pub fn log_rollups() -> SchemaRef {
    let c = |n: &str| Field::new(n, DataType::Int64, false);
    let p = |n: &str| Field::new(n, DataType::Float64, true);
    Arc::new(Schema::new(vec![
        Field::new("window_start", ts(), false),
        Field::new("window_end", ts(), false),
        s("service", false),
        c("count"),
        c("trace_count"),
        c("debug_count"),
        c("info_count"),
        c("warn_count"),
        c("error_count"),
        c("fatal_count"),
        Field::new("error_rate", DataType::Float64, false),
        p("duration_p50"),
        p("duration_p95"),
        p("duration_p99"),
        Field::new("duration_sketch", DataType::Binary, true),
        Field::new("bad_count", DataType::Int64, true),
    ]))
}

/// Columns of `anomalies`: one row per anomalous window of a series' metric.
pub fn anomalies() -> SchemaRef {
    let f = |n: &str| Field::new(n, DataType::Float64, false);
    Arc::new(Schema::new(vec![
        Field::new("detected_at", ts(), false),
        s("service", false),
        s("name", false),
        Field::new("labels", string_map(), false),
        s("metric", false),
        Field::new("window_start", ts(), false),
        f("observed"),
        f("expected"),
        f("lower"),
        f("upper"),
        f("score"),
        s("severity", false),
        s("method", false),
    ]))
}

/// Columns of `regressions`: one row per change point of a series' metric. Beyond the
/// contract: `kind`, `regression` when the change went the bad way for the metric (latency up,
/// throughput down), `improvement` when it went the other, `change` for a metric that may be
/// bad either way (null in rows written before it existed).
pub fn regressions() -> SchemaRef {
    let f = |n: &str| Field::new(n, DataType::Float64, false);
    Arc::new(Schema::new(vec![
        Field::new("detected_at", ts(), false),
        s("service", false),
        s("name", false),
        Field::new("labels", string_map(), false),
        s("metric", false),
        Field::new("change_at", ts(), false),
        f("before"),
        f("after"),
        f("change_pct"),
        f("p_value"),
        s("version_before", true),
        s("version_after", true),
        s("kind", true),
    ]))
}

/// The string columns a `cost_daily` row is keyed by (a day's cost of one resource of one
/// provider, in one currency and usage unit): what folds, loads and filters of the cost tables
/// name, in this order.
pub const BILLING_DIMENSIONS: [&str; 7] = [
    "provider",
    "service",
    "resource_id",
    "resource_type",
    "region",
    "currency",
    "usage_unit",
];

/// Columns of `cost_daily`: one row per day (of `charge_period_start`, UTC) and provider,
/// service, resource, resource type, region and currency, summed over the billing rows. Beyond
/// the contract: `rows` (billing rows folded in), `billed_hours` (hours of charge periods),
/// `utilization_mean` (hour-weighted mean of reported `utilization`), `utilization_max`,
/// `last_used_at` (end of the day's latest charge period with utilization of at least
/// [`USED_UTILIZATION`]) and `last_period_end` (end of the day's latest charge period).
pub fn cost_daily() -> SchemaRef {
    let f = |n: &str, nullable: bool| Field::new(n, DataType::Float64, nullable);
    Arc::new(Schema::new(vec![
        Field::new("date", DataType::Date32, false),
        s("provider", false),
        s("service", true),
        s("resource_id", true),
        s("resource_type", true),
        s("region", true),
        f("cost", false),
        f("effective_cost", false),
        f("usage_quantity", true),
        s("usage_unit", true),
        s("currency", false),
        Field::new("rows", DataType::Int64, false),
        f("billed_hours", false),
        f("utilization_mean", true),
        f("utilization_max", true),
        Field::new("last_used_at", ts(), true),
        Field::new("last_period_end", ts(), false),
    ]))
}

/// Utilization (0..1) from which a resource counts as used in `cost_daily.last_used_at`.
pub const USED_UTILIZATION: f64 = 0.02;

/// Columns of `cost_forecasts`: the latest forecast, one row per scope, key and future day.
/// `scope` is `total` (key `total`), `provider`, `service` or `resource`; `as_of` is the last
/// complete day of actuals the forecast starts after.
pub fn cost_forecasts() -> SchemaRef {
    let f = |n: &str| Field::new(n, DataType::Float64, false);
    Arc::new(Schema::new(vec![
        Field::new("generated_at", ts(), false),
        s("scope", false),
        s("key", false),
        Field::new("date", DataType::Date32, false),
        f("forecast"),
        f("lower_80"),
        f("upper_80"),
        f("lower_95"),
        f("upper_95"),
        s("method", false),
        Field::new("as_of", DataType::Date32, false),
        s("currency", false),
    ]))
}

/// Columns of `forecast_accuracy`: for every forecast series, each method's rolling-origin
/// backtest (`chosen` marks the one that made the forecast); a series too short to forecast
/// has one row with method `none` and the reason in `note`.
pub fn forecast_accuracy() -> SchemaRef {
    let f = |n: &str| Field::new(n, DataType::Float64, true);
    let i = |n: &str| Field::new(n, DataType::Int64, false);
    Arc::new(Schema::new(vec![
        Field::new("generated_at", ts(), false),
        s("scope", false),
        s("key", false),
        s("method", false),
        Field::new("chosen", DataType::Boolean, false),
        i("history_days"),
        i("origins"),
        i("horizon_days"),
        f("smape"),
        f("mase"),
        f("coverage_80"),
        f("coverage_95"),
        s("note", true),
    ]))
}

/// Columns of `cost_opportunities`: the current savings opportunities, one row per resource
/// and kind (`underutilized`, `idle`, `oversized`, `provider_disparity`).
pub fn cost_opportunities() -> SchemaRef {
    let f = |n: &str, nullable: bool| Field::new(n, DataType::Float64, nullable);
    Arc::new(Schema::new(vec![
        Field::new("detected_at", ts(), false),
        s("provider", false),
        s("resource_id", false),
        s("kind", false),
        f("monthly_cost", false),
        f("estimated_monthly_savings", false),
        s("recommendation", false),
        s("service", true),
        s("resource_type", true),
        s("region", true),
        f("utilization_mean", true),
        f("utilization_peak", true),
        s("evidence", false),
        s("currency", false),
    ]))
}

/// Columns of `reports`: one row per generated report. The documents themselves are lake
/// files (`json_path`, `html_path`) served by `GET /api/v1/reports/{report_id}`.
pub fn reports() -> SchemaRef {
    let f = |n: &str| Field::new(n, DataType::Float64, true);
    Arc::new(Schema::new(vec![
        s("report_id", false),
        s("kind", false),
        Field::new("generated_at", ts(), false),
        Field::new("period_start", ts(), false),
        Field::new("period_end", ts(), false),
        s("summary", false),
        s("trigger", false),
        f("spend_to_date"),
        f("month_end_forecast"),
        f("next_30_days_forecast"),
        s("currency", true),
        s("json_path", false),
        s("html_path", false),
    ]))
}

/// Columns of `alerts`: one row per state change of an alert (`pending`, `firing`,
/// `resolved`). `fingerprint` identifies the alert (a hash of its labels); `value` is the
/// rule's value when the state changed. Beyond the contract: `rule` (the rule or built-in that
/// made it), `notified` (false for data older than `alerts.max_age`, which is recorded and never
/// sent) and `generator_url` (the query behind it).
pub fn alerts() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("at", ts(), false),
        s("alertname", false),
        s("fingerprint", false),
        s("state", false),
        s("severity", false),
        Field::new("labels", string_map(), false),
        Field::new("annotations", string_map(), false),
        Field::new("value", DataType::Float64, true),
        Field::new("starts_at", ts(), false),
        Field::new("ends_at", ts(), true),
        s("rule", false),
        Field::new("notified", DataType::Boolean, false),
        s("generator_url", true),
    ]))
}

/// Columns of `slo_status`: each SLO's figures at every evaluation. Over the period, `sli` =
/// good / total (null without events), `error_budget_remaining` = 1 - (bad / total) /
/// (1 - objective); a burn rate is the bad fraction over its window divided by
/// (1 - objective) (null without events). Beyond the contract: `burn_rate_30m`,
/// `burn_rate_2h` and `burn_rate_3d`, the short and long windows the multi-window alerts pair.
pub fn slo_status() -> SchemaRef {
    let r = |n: &str| Field::new(n, DataType::Float64, true);
    Arc::new(Schema::new(vec![
        Field::new("computed_at", ts(), false),
        s("slo", false),
        Field::new("period_start", ts(), false),
        Field::new("period_end", ts(), false),
        Field::new("good", DataType::Int64, false),
        Field::new("total", DataType::Int64, false),
        r("sli"),
        Field::new("objective", DataType::Float64, false),
        Field::new("error_budget_remaining", DataType::Float64, false),
        r("burn_rate_5m"),
        r("burn_rate_1h"),
        r("burn_rate_6h"),
        r("burn_rate_1d"),
        r("burn_rate_30m"),
        r("burn_rate_2h"),
        r("burn_rate_3d"),
    ]))
}

/// Columns of `leaks` (CONTRACT section 10): one row each time a memory series is found
/// leaking, or (`growth_per_hour` 0, `method` ending in `:cleared`) stops leaking. `since` is
/// when the growth began, `version` the service's version then.
pub fn leaks() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("detected_at", ts(), false),
        s("service", false),
        s("host", true),
        s("name", false),
        Field::new("labels", string_map(), false),
        s("series", false),
        Field::new("since", ts(), true),
        Field::new("growth_per_hour", DataType::Float64, false),
        Field::new("growth_pct_per_day", DataType::Float64, false),
        s("version", true),
        Field::new("restarts", DataType::Int64, false),
        Field::new("score", DataType::Float64, false),
        s("method", false),
    ]))
}

/// Columns of `capacity_forecasts` (CONTRACT section 10): one row per series with a limit at
/// each computation; `exhausted_at` with its 80% interval, all three null when the limit is not
/// reached within the horizon.
pub fn capacity_forecasts() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("computed_at", ts(), false),
        s("service", false),
        s("host", true),
        s("name", false),
        Field::new("labels", string_map(), false),
        s("series", false),
        Field::new("current", DataType::Float64, true),
        Field::new("limit", DataType::Float64, false),
        Field::new("growth_per_hour", DataType::Float64, false),
        Field::new("exhausted_at", ts(), true),
        Field::new("exhausted_at_low", ts(), true),
        Field::new("exhausted_at_high", ts(), true),
        s("method", false),
    ]))
}

/// The processor's tables: (name, schema, partitioned by `date=/hour=` of their window).
pub fn derived_tables() -> Vec<(&'static str, SchemaRef, bool)> {
    vec![
        ("metric_rollups_1m", metric_rollups(), true),
        ("metric_rollups_1h", metric_rollups(), true),
        ("log_rollups_1m", log_rollups(), true),
        ("anomalies", anomalies(), false),
        ("regressions", regressions(), false),
        ("cost_daily", cost_daily(), false),
        ("cost_forecasts", cost_forecasts(), false),
        ("forecast_accuracy", forecast_accuracy(), false),
        ("cost_opportunities", cost_opportunities(), false),
        ("reports", reports(), false),
        ("alerts", alerts(), false),
        ("slo_status", slo_status(), false),
        ("leaks", leaks(), false),
        ("capacity_forecasts", capacity_forecasts(), false),
    ]
}
