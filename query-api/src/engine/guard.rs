//! The read-only rule of the SQL endpoint: only queries run (SELECT, WITH, VALUES, EXPLAIN,
//! SHOW, DESCRIBE). Anything that writes, creates, sets options or reads files is refused
//! before planning, and DataFusion's own `SQLOptions` refuse it again at planning.

use datafusion::execution::context::SQLOptions;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{SetExpr, Statement, TableFactor, Visit, Visitor};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use super::error::QueryError;

/// Longest accepted SQL text, in bytes.
pub const MAX_SQL_BYTES: usize = 256 * 1024;

/// Planner options of the endpoint: no DDL, no DML, no `SET`.
pub fn sql_options() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// Refuses anything that is not one read-only query.
///
/// # Errors
/// [`QueryError::Refused`], [`QueryError::Invalid`] or [`QueryError::TooLarge`], naming what.
pub fn check(sql: &str) -> Result<(), QueryError> {
    parse_one(sql).map(drop)
}

/// Parses one read-only statement, refusing anything else.
///
/// # Errors
/// [`QueryError::Refused`], [`QueryError::Invalid`] or [`QueryError::TooLarge`], naming what.
pub fn parse_one(sql: &str) -> Result<Statement, QueryError> {
    if sql.trim().is_empty() {
        return Err(QueryError::Invalid("sql is empty".into()));
    }
    if sql.len() > MAX_SQL_BYTES {
        return Err(QueryError::TooLarge(MAX_SQL_BYTES));
    }
    let mut statements = Parser::parse_sql(&GenericDialect {}, sql)
        .map_err(|e| QueryError::Invalid(format!("sql does not parse: {e}")))?;
    match statements.len() {
        0 => Err(QueryError::Invalid("sql holds no statement".into())),
        1 => {
            let one = statements.remove(0);
            check_statement(&one)?;
            Ok(one)
        }
        n => Err(QueryError::Invalid(format!(
            "one statement per request, found {n}"
        ))),
    }
}

/// Table functions a query may call; none of them reads files. `pg_get_keywords` is
/// PostgreSQL's (DBeaver asks it), also as `pg_catalog.pg_get_keywords`.
const TABLE_FUNCTIONS: [&str; 4] = [
    "generate_series",
    "range",
    "pg_get_keywords",
    "pg_catalog.pg_get_keywords",
];

/// Refuses relations that read files or call table functions outside [`TABLE_FUNCTIONS`].
struct NoFiles;

impl Visitor for NoFiles {
    type Break = QueryError;

    fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<QueryError> {
        match t {
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            } => {
                let f = name.to_string().to_ascii_lowercase();
                if !TABLE_FUNCTIONS.contains(&f.as_str()) {
                    return ControlFlow::Break(refused(&format!("table function {f}")));
                }
            }
            TableFactor::Table { name, .. } => {
                let n = name.to_string();
                let file_like = n.contains('/')
                    || n.contains('\\')
                    || n.contains("://")
                    || [".parquet", ".csv", ".json", ".arrow", ".avro", ".ndjson"]
                        .iter()
                        .any(|ext| {
                            n.to_ascii_lowercase()
                                .trim_end_matches(['\'', '"', '`'])
                                .ends_with(ext)
                        });
                if file_like {
                    return ControlFlow::Break(refused(&format!("reading files ({n})")));
                }
            }
            TableFactor::TableFunction { .. } | TableFactor::Function { .. } => {
                return ControlFlow::Break(refused("table function"));
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// Refuses a parsed statement unless it is a read-only query.
///
/// # Errors
/// [`QueryError::Refused`], [`QueryError::Invalid`] or [`QueryError::TooLarge`], naming what.
pub fn check_statement(s: &Statement) -> Result<(), QueryError> {
    if let ControlFlow::Break(e) = s.visit(&mut NoFiles) {
        return Err(e);
    }
    match s {
        Statement::Query(q) => {
            if selects_into(&q.body) {
                return Err(refused("SELECT INTO"));
            }
            Ok(())
        }
        Statement::Explain { statement, .. } => check_statement(statement),
        Statement::ExplainTable { .. }
        | Statement::ShowTables { .. }
        | Statement::ShowColumns { .. } => Ok(()),
        other => {
            let text = other.to_string();
            let kind: String = text
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
                .to_uppercase();
            Err(refused(&kind))
        }
    }
}

fn selects_into(body: &SetExpr) -> bool {
    match body {
        SetExpr::Select(s) => s.into.is_some(),
        SetExpr::Query(q) => selects_into(&q.body),
        SetExpr::SetOperation { left, right, .. } => selects_into(left) || selects_into(right),
        _ => false,
    }
}

fn refused(kind: &str) -> QueryError {
    QueryError::Refused(kind.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_pass() {
        for q in [
            "SELECT 1",
            "WITH a AS (SELECT 1 AS x) SELECT x FROM a",
            "EXPLAIN SELECT * FROM metrics",
            "SHOW TABLES",
            "DESCRIBE metrics",
            "SELECT service, count(*) FROM metrics WHERE labels['endpoint'] = '/api/pay' GROUP BY service",
            "SELECT * FROM generate_series(1, 10)",
            "SELECT string_agg(word, ',') FROM pg_catalog.pg_get_keywords()",
            "SELECT * FROM metrics m JOIN logs l ON m.service = l.service",
        ] {
            assert!(check(q).is_ok(), "{q}");
        }
    }

    #[test]
    fn writes_and_files_are_refused() {
        for q in [
            "INSERT INTO metrics VALUES (1)",
            "COPY metrics TO '/tmp/x.parquet'",
            "CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '/etc/'",
            "CREATE TABLE x AS SELECT 1",
            "CREATE VIEW v AS SELECT 1",
            "DROP TABLE metrics",
            "SET datafusion.execution.batch_size = 1",
            "SELECT 1 INTO t",
            "EXPLAIN INSERT INTO metrics VALUES (1)",
            "DELETE FROM metrics",
            "UPDATE metrics SET value = 1",
            "SELECT 1; DROP TABLE metrics",
            "SELECT * FROM read_parquet('/etc/passwd')",
            "SELECT * FROM read_csv('/etc/passwd')",
            "SELECT * FROM parquet_metadata('lake/metrics/x.parquet')",
            "SELECT * FROM '/etc/passwd'",
            "SELECT * FROM 'lake/metrics/date=2026-11-22/hour=10/part.parquet'",
            "SELECT * FROM \"s3://bucket/x.parquet\"",
            "WITH a AS (SELECT * FROM read_json('x.json')) SELECT * FROM a",
            "SELECT * FROM metrics WHERE service IN (SELECT * FROM read_parquet('x'))",
            "EXPLAIN SELECT * FROM '/etc/passwd'",
        ] {
            let e = check(q).expect_err(q);
            assert!(
                matches!(e, QueryError::Refused(_) | QueryError::Invalid(_)),
                "{q}"
            );
            let answered = crate::http::error::ApiError::from(e);
            assert_eq!(
                answered.status(),
                axum::http::StatusCode::BAD_REQUEST,
                "{q}"
            );
        }
    }
}
