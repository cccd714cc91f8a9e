//! What alerts reach in the tests: a local HTTP server that records what it is sent (a webhook,
//! Slack or PagerDuty stand-in), and a real Alertmanager process.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::support::{free_port, wait_for, Api};

/// A local HTTP server that records every JSON body posted to it, by path. Paths starting
/// with `/flaky` answer 503 to their first two requests.
pub struct Recorder {
    pub base: String,
    got: Arc<Mutex<Vec<(String, Value)>>>,
    _runtime: tokio::runtime::Runtime,
}

impl Recorder {
    pub fn start() -> Self {
        use axum::extract::{Path as UrlPath, State};
        use axum::http::StatusCode;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let got: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        type Seen = Arc<Mutex<Vec<(String, Value)>>>;
        async fn record(
            State(got): State<Seen>,
            UrlPath(path): UrlPath<String>,
            body: axum::body::Bytes,
        ) -> StatusCode {
            let path = format!("/{path}");
            let mut got = got.lock().unwrap();
            let tries = got
                .iter()
                .filter(|(p, _)| *p == format!("{path}#try"))
                .count();
            if path.starts_with("/flaky") && tries < 2 {
                got.push((format!("{path}#try"), Value::Null));
                return StatusCode::SERVICE_UNAVAILABLE;
            }
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            got.push((path, v));
            StatusCode::OK
        }
        let app = axum::Router::new()
            .route("/{*path}", axum::routing::post(record))
            .with_state(Arc::clone(&got));
        runtime.spawn(async move { axum::serve(listener, app).await });
        Self {
            base,
            got,
            _runtime: runtime,
        }
    }

    /// The bodies posted to `path`, in order.
    pub fn bodies(&self, path: &str) -> Vec<Value> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// A real Alertmanager on a free port, routing every alert to `webhook` at once.
pub struct Alertmanager {
    child: Child,
    pub url: String,
}

impl Alertmanager {
    fn binary() -> String {
        for b in ["prometheus-alertmanager", "alertmanager"] {
            if Command::new("sh")
                .arg("-c")
                .arg(format!("command -v {b}"))
                .output()
                .is_ok_and(|o| o.status.success())
            {
                return b.to_string();
            }
        }
        panic!(
            "Alertmanager is not installed; install Debian's package with \
             `apt-get install prometheus-alertmanager` (scripts/test.sh does)"
        );
    }

    pub fn start(dir: &Path, webhook: &str) -> Self {
        let config = dir.join("alertmanager.yml");
        std::fs::write(
            &config,
            format!(
                "route:\n  receiver: rec\n  group_by: ['alertname', 'service']\n  group_wait: 1s\n  \
                 group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n- name: rec\n  \
                 webhook_configs:\n  - url: {webhook}\n    send_resolved: true\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new(Self::binary())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("am-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("alertmanager starts");
        let url = format!("http://127.0.0.1:{port}");
        let client = Api::client();
        wait_for("alertmanager to be ready", Duration::from_secs(30), || {
            client
                .get(format!("{url}/-/ready"))
                .send()
                .ok()
                .filter(|r| r.status().is_success())
        });
        Self { child, url }
    }

    /// The alerts Alertmanager holds as active.
    pub fn alerts(&self) -> Vec<Value> {
        Api::client()
            .get(format!("{}/api/v2/alerts?active=true", self.url))
            .send()
            .and_then(|r| r.json::<Value>())
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
