//! Wiring of alert evaluation: the processor's alerts job runs its rules on the query side's
//! engine (the same tables, functions and limits as the API) and sends through receivers
//! started here.

use std::sync::Arc;

use crate::brokers::KafkaBrokers;
use opslake_lake::Lake;
use opslake_processor::alerts::notify::{Dispatcher, Ledger};
use opslake_processor::jobs::alerts::Alerting;
use opslake_processor::sql::{Answer, QueryFailed, SqlEngine};
use opslake_query_api::QueryEngine;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// The query engine as the processor's SQL engine.
struct EngineSql(Arc<QueryEngine>);

impl SqlEngine for EngineSql {
    fn query<'a>(&'a self, sql: &'a str) -> Answer<'a> {
        Box::pin(async move {
            let r = self
                .0
                .query(sql)
                .await
                .map_err(|e| QueryFailed(e.to_string()))?;
            if r.truncated {
                let why = r.truncation.map_or_else(
                    || "the answer was truncated".to_string(),
                    opslake_query_api::Truncation::message,
                );
                return Err(QueryFailed(why));
            }
            Ok(r.batches)
        })
    }
}

/// Alert evaluation over `engine`, with receivers that settle `lake`'s outbox (as `writer`)
/// and stop with `stop`.
pub(crate) fn alerting(
    cfg: &Config,
    engine: Arc<QueryEngine>,
    lake: Arc<Lake>,
    writer: String,
    stop: &CancellationToken,
) -> Alerting {
    let a = &cfg.alerts;
    let external_url = a
        .external_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", cfg.listen))
        .trim_end_matches('/')
        .to_string();
    // Prometheus' rule: a firing alert lasts four re-sends (or evaluations) without news.
    let firing_for = a.resend_interval.max(a.interval) * 4;
    Alerting {
        config: a.clone(),
        slos: cfg.slos.clone(),
        engine: Arc::new(EngineSql(engine)),
        dispatcher: Dispatcher::start(
            &a.receivers,
            external_url.clone(),
            firing_for,
            Ledger { lake, writer },
            stop,
        ),
        external_url,
        brokers: Some(Arc::new(KafkaBrokers {
            servers: cfg.brokers.clone(),
            properties: cfg.ingest.kafka.clone(),
        })),
    }
}
