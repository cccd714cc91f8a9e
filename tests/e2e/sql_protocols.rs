//! SQL for every client: the PostgreSQL wire protocol and Arrow Flight SQL, with real clients
//! from the registries (Debian's `psql`, psycopg and ADBC's Flight SQL driver from PyPI),
//! answering exactly as the HTTP API does over the same data.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{python_client, wait_for, Api, Broker, Setup, TestProducer};

const TOKEN: &str = "pg-s3cret";
const T0: i64 = 1_795_341_600_000; // 2026-11-22T10:00:00Z

/// `psql` with `args`, without TLS; answers (exit code, stdout, stderr).
fn psql(port: &str, password: &str, args: &[&str]) -> (i32, String, String) {
    psql_with(port, password, "disable", args)
}

fn psql_with(port: &str, password: &str, sslmode: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            port,
            "-U",
            "grafana",
            "-d",
            "opslake",
            "-X",
        ])
        .args(args)
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .env("PGSSLMODE", sslmode)
        .output()
        .expect("psql runs (scripts/test.sh installs postgresql-client)");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ms(v: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap_or_else(|e| panic!("{v}: {e}"))
        .timestamp_millis()
}

/// Two hours of three services' latencies (two endpoints each), one sample every 10 s.
fn events() -> Vec<Value> {
    let mut out = Vec::new();
    for i in 0..720_i64 {
        for (s, service) in ["checkout", "search", "auth"].iter().enumerate() {
            let endpoint = if i % 3 == 0 { "/a" } else { "/b" };
            let value = 10.0 + (s as f64) * 5.0 + ((i * 7 + s as i64) % 50) as f64;
            out.push(
                json!({"timestamp": T0 + i * 10_000, "service": service, "name": "latency_ms",
                "value": value, "labels": {"endpoint": endpoint}}),
            );
        }
    }
    out
}

#[test]
fn postgres_and_flight_sql_clients_answer_as_the_http_api() {
    let broker = Broker::start();
    let lake = tempfile::tempdir().unwrap();
    let setup = Setup::new(&broker, lake.path(), "sqlproto");
    // TLS is offered; clients choose (psql below both ways, psycopg prefers it).
    let certs = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert_file, key_file) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    std::fs::write(&cert_file, cert.cert.pem()).unwrap();
    std::fs::write(&key_file, cert.key_pair.serialize_pem()).unwrap();
    let opslake = setup.spawn(
        "run",
        &[
            ("OPSLAKE_API_TOKEN", TOKEN),
            ("OPSLAKE_PG_LISTEN", "127.0.0.1:0"),
            ("OPSLAKE_FLIGHT_LISTEN", "127.0.0.1:0"),
            ("OPSLAKE_PG_TLS_CERT", cert_file.to_str().unwrap()),
            ("OPSLAKE_PG_TLS_KEY", key_file.to_str().unwrap()),
        ],
    );
    let api = Api {
        token: Some(TOKEN.into()),
        ..opslake.api()
    };
    let base = api.base.clone();
    let http_rows = |sql: &str| api.rows(sql);
    let pg_port = opslake
        .pg
        .clone()
        .expect("the PostgreSQL address is printed")
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let flight = opslake
        .flight
        .clone()
        .expect("the Flight SQL address is printed");

    let events = events();
    let p = TestProducer::new(&setup.brokers);
    p.send_all(&setup.topic("metrics"), &events);
    p.flush();
    wait_for(
        "every event in the rollups",
        Duration::from_secs(120),
        || {
            let n = http_rows("SELECT coalesce(sum(count), 0) FROM metric_rollups_1m");
            (n[0][0].as_i64() == Some(events.len() as i64)).then_some(())
        },
    );

    // psql, the simple query protocol.
    let (code, out, err) = psql(
        &pg_port,
        TOKEN,
        &["-At", "-c", "SELECT count(*) FROM metrics"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), events.len().to_string());
    let (code, out, err) = psql(&pg_port, TOKEN, &["-c", r"\dt"]);
    assert_eq!(code, 0, "{err}");
    for table in [
        "metrics",
        "logs",
        "billing",
        "metric_rollups_1m",
        "metric_rollups_1h",
    ] {
        assert!(
            out.lines()
                .any(|l| l.split('|').nth(1).map(str::trim) == Some(table)),
            "\\dt lists {table}:\n{out}"
        );
    }
    let (code, out, err) = psql(&pg_port, TOKEN, &["-c", r"\d metric_rollups_1m"]);
    assert_eq!(code, 0, "{err}");
    let columns = http_rows(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'metric_rollups_1m'",
    );
    assert!(columns.len() >= 5);
    for c in &columns {
        let name = c[0].as_str().unwrap();
        assert!(
            out.lines()
                .any(|l| l.split('|').next().map(str::trim) == Some(name)),
            "\\d shows {name}:\n{out}"
        );
    }
    assert!(out.contains("timestamp with time zone"), "{out}");
    assert!(out.contains("bytea"), "sketches are bytea:\n{out}");
    // A refused write is an error; the session goes on.
    let (_, out, err) = psql(
        &pg_port,
        TOKEN,
        &["-At", "-c", "DROP TABLE metrics", "-c", "SELECT 42"],
    );
    assert!(err.contains("read-only"), "{err}");
    assert_eq!(out.trim(), "42");
    let (code, out, err) = psql_with(&pg_port, TOKEN, "require", &["-c", r"\conninfo"]);
    assert_eq!(code, 0, "{err}");
    // psql up to 16 says "SSL connection (protocol: TLSv1.3, ...)"; 17 has a table row.
    let tls = out.contains("SSL connection (")
        || out
            .lines()
            .any(|l| l.contains("SSL Connection") && l.contains("true"));
    assert!(tls, "TLS when asked for: {out}");
    let (code, _, err) = psql(&pg_port, "wrong", &["-c", "SELECT 1"]);
    assert_ne!(code, 0);
    assert!(
        err.to_lowercase()
            .contains("password authentication failed"),
        "{err}"
    );

    // psycopg, the extended protocol with bound parameters.
    let since = "2026-11-22T10:30:00Z";
    let p99_sql = format!(
        "SELECT service, quantile_merge(sketch, 0.99) AS p99, sum(count) AS n FROM metric_rollups_1m \
         WHERE window_start >= TIMESTAMP '{since}' GROUP BY service ORDER BY service"
    );
    let grafana_series = format!(
        "SELECT floor(extract(epoch from window_start)/60)*60 AS \"time\", service AS metric, \
         quantile_merge(sketch, 0.95) AS p95 FROM metric_rollups_1m \
         WHERE window_start BETWEEN '{since}' AND '2026-11-22T11:00:00Z' \
         GROUP BY 1, 2 ORDER BY 1, 2"
    );
    let answers = python_client(
        &["psycopg", "127.0.0.1", &pg_port, TOKEN],
        &json!([
            {"sql": "SELECT service, count(*) AS n FROM metrics WHERE service = %s AND value > %s GROUP BY service",
             "params": ["checkout", 20.5]},
            {"sql": "SELECT service, quantile_merge(sketch, 0.99) AS p99, sum(count) AS n FROM metric_rollups_1m \
                     WHERE window_start >= %s GROUP BY service ORDER BY service",
             "params": [{"timestamp": since}], "prepare": true},
            {"sql": "SELECT window_start, service FROM metric_rollups_1m ORDER BY window_start, service LIMIT 5"},
            {"sql": "SELECT labels, sketch FROM metric_rollups_1m WHERE service = 'auth' LIMIT 1"},
            {"sql": "DROP TABLE metrics"},
            {"sql": "SELECT * FROM no_such_table"},
            // Grafana's PostgreSQL datasource (pgx: prepared statements): its table and column
            // pickers, then a time series with its macros expanded as Grafana sends it.
            {"sql": grafana_tables(), "prepare": true},
            {"sql": grafana_columns("metric_rollups_1m"), "prepare": true},
            {"sql": grafana_series, "prepare": true},
            {"sql": "SELECT version()", "simple": true},
            // Grafana's version probe, schema picker, tables of a schema, TimescaleDB probe.
            {"sql": "SELECT current_setting('server_version_num')::int/100 as version", "prepare": true},
            {"sql": "SELECT schema_name AS \"name\" FROM information_schema.schemata WHERE schema_name NOT IN ('information_schema', 'pg_catalog', 'pg_toast') ORDER BY schema_name", "prepare": true},
            {"sql": "SELECT quote_ident(table_name) AS \"table\" FROM information_schema.tables WHERE quote_ident(table_schema) = 'public' ORDER BY 1", "prepare": true},
            {"sql": "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'", "prepare": true},
        ]),
    );
    let expect = http_rows("SELECT service, count(*) AS n FROM metrics WHERE service = 'checkout' AND value > 20.5 GROUP BY service",
    );
    assert_eq!(answers[0]["rows"], json!(expect), "{}", answers[0]);
    let expect = http_rows(&p99_sql);
    assert_eq!(expect.len(), 3);
    assert_eq!(
        answers[1]["rows"],
        json!(expect),
        "quantile_merge as over HTTP"
    );
    assert_eq!(answers[1]["types"][1], "float8");
    let expect = http_rows("SELECT window_start, service FROM metric_rollups_1m ORDER BY window_start, service LIMIT 5",
    );
    assert_eq!(answers[2]["types"][0], "timestamptz", "{}", answers[2]);
    for (got, want) in answers[2]["rows"].as_array().unwrap().iter().zip(&expect) {
        assert_eq!(ms(&got[0]), ms(&want[0]));
        assert_eq!(got[1], want[1]);
    }
    assert_eq!(answers[3]["types"][1], "bytea", "sketches are bytea");
    let labels: Value = serde_json::from_str(answers[3]["rows"][0][0].as_str().unwrap()).unwrap();
    assert!(
        labels["endpoint"].is_string(),
        "labels as a JSON object: {labels}"
    );
    assert_eq!(answers[4]["sqlstate"], "25006", "{}", answers[4]);
    assert!(answers[4]["error"].as_str().unwrap().contains("read-only"));
    assert!(
        answers[5]["error"]
            .as_str()
            .unwrap()
            .contains("no_such_table"),
        "{}",
        answers[5]
    );
    let tables: Vec<&str> = answers[6]["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", answers[6]))
        .iter()
        .filter_map(|r| r[0].as_str())
        .collect();
    assert!(tables.contains(&"metric_rollups_1m"), "{tables:?}");
    let picked: Vec<&str> = answers[7]["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", answers[7]))
        .iter()
        .filter_map(|r| r[0].as_str())
        .collect();
    assert!(
        picked.contains(&"window_start") && picked.contains(&"sketch"),
        "{picked:?}"
    );
    let series = answers[8]["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", answers[8]));
    assert_eq!(series.len(), 31 * 3, "a point per minute and service");
    assert!(answers[9]["rows"][0][0]
        .as_str()
        .unwrap()
        .contains("PostgreSQL"));
    assert_eq!(answers[10]["rows"], json!([[1600]]), "{}", answers[10]);
    assert_eq!(answers[11]["rows"], json!([["public"]]), "{}", answers[11]);
    assert!(
        answers[12]["rows"]
            .to_string()
            .contains("\"metric_rollups_1m\""),
        "{}",
        answers[12]
    );
    assert_eq!(
        answers[13]["rows"],
        json!([]),
        "no TimescaleDB: {}",
        answers[13]
    );
    assert_eq!(answers.last().unwrap()["after_errors"], 1);

    // What DBeaver and Metabase ask when they connect and list tables, as each sends it (the
    // simple protocol for `SET`/`SHOW`, statements for the rest).
    let requests: Vec<Value> = CLIENT_METADATA_QUERIES
        .iter()
        .map(|q| json!({"sql": q, "simple": true}))
        .collect();
    let answers = python_client(&["psycopg", "127.0.0.1", &pg_port, TOKEN], &json!(requests));
    for (q, a) in CLIENT_METADATA_QUERIES.iter().zip(&answers) {
        assert!(a.get("error").is_none(), "{q}: {a}");
    }
    let listed = &answers[5]["rows"];
    assert!(
        listed.to_string().contains("\"metric_rollups_1m\""),
        "Metabase's table list: {listed}"
    );

    // The shipped PostgreSQL dashboard and alert rule, with Grafana's macros expanded as its
    // PostgreSQL datasource expands them.
    let (from, to) = ("2026-11-22T10:00:00Z", "2026-11-22T12:00:00Z");
    let shipped = shipped_postgres_queries();
    assert!(shipped.len() >= 4, "{shipped:?}");
    let requests: Vec<Value> = shipped
        .iter()
        .map(|(_, sql)| json!({"sql": grafana_expand(sql, from, to), "prepare": true}))
        .collect();
    let answers = python_client(&["psycopg", "127.0.0.1", &pg_port, TOKEN], &json!(requests));
    for ((what, _), a) in shipped.iter().zip(&answers) {
        let rows = a["rows"]
            .as_array()
            .unwrap_or_else(|| panic!("{what}: {a}"));
        assert!(!rows.is_empty(), "{what}: no rows");
    }

    // ADBC's Flight SQL driver.
    let uri = format!("grpc://{flight}");
    let answers = python_client(
        &["adbc", &uri, TOKEN],
        &json!([
            {"sql": "SELECT service, count(*) AS n FROM metrics GROUP BY service ORDER BY service"},
            {"sql": "SELECT count(*) AS n FROM metrics WHERE service = $1 AND value > $2", "params": ["search", 30.0]},
            {"sql": p99_sql},
            {"table_schema": "metric_rollups_1m"},
            {"objects": true},
            {"info": true},
            {"sql": "DROP TABLE metrics"},
        ]),
    );
    let expect =
        http_rows("SELECT service, count(*) AS n FROM metrics GROUP BY service ORDER BY service");
    assert_eq!(answers[0]["rows"], json!(expect), "{}", answers[0]);
    let expect =
        http_rows("SELECT count(*) AS n FROM metrics WHERE service = 'search' AND value > 30.0");
    assert_eq!(answers[1]["rows"], json!(expect), "{}", answers[1]);
    assert_eq!(answers[2]["rows"], json!(http_rows(&p99_sql)));
    let names: Vec<Value> = columns.iter().map(|c| c[0].clone()).collect();
    assert_eq!(answers[3]["columns"], json!(names), "{}", answers[3]);
    let listed = answers[4]["tables"].as_array().unwrap();
    for t in ["metrics", "metric_rollups_1m", "billing"] {
        assert!(listed.contains(&json!(t)), "{listed:?}");
    }
    assert!(answers[5].to_string().contains("opslake"), "{}", answers[5]);
    assert!(
        answers[6]["error"].as_str().unwrap().contains("read-only"),
        "{}",
        answers[6]
    );
    let refused = python_client(&["adbc", &uri, "wrong"], &json!([{"sql": "SELECT 1"}]));
    assert!(
        refused[0]["error"]
            .as_str()
            .unwrap()
            .contains("nauthenticated"),
        "{}",
        refused[0]
    );

    // One engine, counted by protocol.
    let metrics = Api::client()
        .get(format!("{base}/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .unwrap()
        .text()
        .unwrap();
    for protocol in ["http", "postgres", "flight_sql"] {
        assert!(
            metrics.contains(&format!(
                "opslake_queries_total{{outcome=\"ok\",protocol=\"{protocol}\"}}"
            )),
            "{protocol} in /metrics"
        );
    }
}

/// The schema test of Grafana's PostgreSQL datasource (`buildSchemaConstraint` of its
/// `postgresMetaQuery.ts`): is a table's schema on the search path.
const GRAFANA_ON_SEARCH_PATH: &str = r#"
          quote_ident(table_schema) IN (
          SELECT
            CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM
            generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s
          )"#;

/// The table picker's query of Grafana's PostgreSQL datasource (`showTables()`).
fn grafana_tables() -> String {
    let on_path = GRAFANA_ON_SEARCH_PATH;
    format!(
        r#"SELECT
    CASE WHEN {on_path}
      THEN quote_ident(table_name)
      ELSE quote_ident(table_schema) || '.' || quote_ident(table_name)
    END AS "table"
    FROM information_schema.tables
    WHERE quote_ident(table_schema) NOT IN ('information_schema',
                             'pg_catalog',
                             '_timescaledb_cache',
                             '_timescaledb_catalog',
                             '_timescaledb_internal',
                             '_timescaledb_config',
                             'timescaledb_information',
                             'timescaledb_experimental')
    ORDER BY CASE WHEN {on_path} THEN 0 ELSE 1 END, 1"#
    )
}

/// The column picker's query of Grafana's PostgreSQL datasource (`getSchema(table)`).
fn grafana_columns(table: &str) -> String {
    let on_path = GRAFANA_ON_SEARCH_PATH;
    format!(
        r#"SELECT quote_ident(column_name) AS "column", data_type AS "type"
    FROM information_schema.columns
    WHERE
      CASE WHEN array_length(parse_ident('{table}'),1) = 2
        THEN quote_ident(table_schema) = (parse_ident('{table}'))[1]
          AND quote_ident(table_name) = (parse_ident('{table}'))[2]
        ELSE quote_ident(table_name) = '{table}'
          AND {on_path}
      END"#
    )
}

/// The raw SQL of every panel of `deploy/grafana/dashboards/services-postgres.json` and of the
/// alert rules of `deploy/grafana/provisioning/alerting/opslake.yaml`, with where it is.
fn shipped_postgres_queries() -> Vec<(String, String)> {
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana");
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(deploy.join("dashboards/services-postgres.json")).unwrap(),
    )
    .unwrap();
    let mut out = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            assert_eq!(t["datasource"]["uid"], "opslake-postgres");
            out.push((
                format!("panel {}", panel["title"]),
                t["rawSql"].as_str().unwrap().to_string(),
            ));
        }
    }
    let rules: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(deploy.join("provisioning/alerting/opslake.yaml")).unwrap(),
    )
    .unwrap();
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            for q in rule["data"].as_sequence().unwrap() {
                if q["datasourceUid"].as_str() == Some("opslake-postgres") {
                    out.push((
                        format!("alert rule {:?}", rule["title"]),
                        q["model"]["rawSql"].as_str().unwrap().to_string(),
                    ));
                }
            }
        }
    }
    out
}

/// Expands the macros of Grafana's PostgreSQL datasource as it does before sending a query
/// (`$__timeFilter`, `$__timeGroupAlias` at a 1-minute interval, `$__interval`).
fn grafana_expand(sql: &str, from: &str, to: &str) -> String {
    let mut out = sql.replace("$__interval", "1m");
    while let Some(at) = out.find("$__timeFilter(") {
        let close = at + out[at..].find(')').unwrap();
        let column = &out[at + "$__timeFilter(".len()..close];
        let expanded = format!("{column} BETWEEN '{from}' AND '{to}'");
        out.replace_range(at..=close, &expanded);
    }
    while let Some(at) = out.find("$__timeGroupAlias(") {
        let close = at + out[at..].find(')').unwrap();
        let args = &out[at + "$__timeGroupAlias(".len()..close];
        let column = args.split(',').next().unwrap().trim();
        let expanded = format!("floor(extract(epoch from {column})/60)*60 AS \"time\"");
        out.replace_range(at..=close, &expanded);
    }
    out
}

/// Metadata queries of DBeaver 25 and Metabase 0.55 (as datafusion-postgres records them).
const CLIENT_METADATA_QUERIES: [&str; 11] = [
    "SET extra_float_digits = 3",
    "SET application_name = 'DBeaver 25.1.5 - Main <postgres>'",
    "SELECT current_schema(),session_user",
    "SELECT n.oid,n.*,d.description FROM pg_catalog.pg_namespace n LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=n.oid AND d.objsubid=0 AND d.classoid='pg_namespace'::regclass ORDER BY nspname",
    "SELECT c.oid,c.*,d.description,pg_catalog.pg_get_expr(c.relpartbound, c.oid) as partition_expr, pg_catalog.pg_get_partkeydef(c.oid) as partition_key FROM pg_catalog.pg_class c LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=c.oid AND d.objsubid=0 AND d.classoid='pg_class'::regclass WHERE c.relnamespace=11 AND c.relkind not in ('i','I','c')",
    r#"SELECT "n"."nspname" AS "schema", "c"."relname" AS "name", CASE "c"."relkind" WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'PARTITIONED TABLE' WHEN 'v' THEN 'VIEW' WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE NULL END AS "type", "d"."description" AS "description", "stat"."n_live_tup" AS "estimated_row_count" FROM "pg_catalog"."pg_class" AS "c" INNER JOIN "pg_catalog"."pg_namespace" AS "n" ON "c"."relnamespace" = "n"."oid" LEFT JOIN "pg_catalog"."pg_description" AS "d" ON ("c"."oid" = "d"."objoid") AND ("d"."objsubid" = '0') AND ("d"."classoid" = 'pg_class'::regclass) LEFT JOIN "pg_stat_user_tables" AS "stat" ON ("n"."nspname" = "stat"."schemaname") AND ("c"."relname" = "stat"."relname") WHERE ("c"."relnamespace" = "n"."oid") AND ("n"."nspname" !~ '^pg_') AND ("n"."nspname" <> 'information_schema') AND c.relkind in ('r', 'p', 'v', 'f', 'm') AND ("n"."nspname" IN ('public')) ORDER BY "type" ASC, "schema" ASC, "name" ASC"#,
    "SELECT string_agg(word, ',' ) from pg_catalog.pg_get_keywords() where word <> ALL ('{a,abs,absolute,action}'::text[])",
    "SHOW search_path",
    "SHOW TRANSACTION ISOLATION LEVEL",
    "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ UNCOMMITTED",
    "show timezone",
];
