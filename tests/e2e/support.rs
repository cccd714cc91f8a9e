//! Processes and clients the tests drive: the broker, opslake, a producer, an HTTP client.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::{json, Value};

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn tansu_binary() -> PathBuf {
    if let Ok(p) = std::env::var("TANSU_BIN") {
        return PathBuf::from(p);
    }
    let home = std::env::var("HOME").unwrap_or_default();
    let cargo_bin = Path::new(&home).join(".cargo/bin/tansu");
    if cargo_bin.exists() {
        return cargo_bin;
    }
    if let Ok(out) = Command::new("sh")
        .arg("-c")
        .arg("command -v tansu")
        .output()
    {
        let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !p.is_empty() {
            return PathBuf::from(p);
        }
    }
    panic!(
        "the Tansu broker is not installed; install it with `scripts/tansu.sh install` \
         (cargo install tansu --locked --version 0.6.0 --features dynostore,libsql) or set TANSU_BIN"
    );
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Asserts that two answers hold the same rows in the same order, numbers within a relative
/// 1e-9 of each other: a parallel `sum` or `avg` of floats depends on the order in which its
/// partial sums meet, so its last digits may differ between runs and between instances.
pub fn assert_same_answers(a: &[Vec<Value>], b: &[Vec<Value>], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: row counts differ\n{a:?}\n{b:?}");
    for (ra, rb) in a.iter().zip(b) {
        assert_eq!(ra.len(), rb.len(), "{what}: {ra:?} vs {rb:?}");
        for (x, y) in ra.iter().zip(rb) {
            let same = match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
                _ => x == y,
            };
            assert!(same, "{what}: {ra:?} vs {rb:?}");
        }
    }
}

/// A Tansu broker process on a free port; killed on drop.
pub struct Broker {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Broker {
    /// A broker on a free port that keeps its data in memory.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (child, port) = start_on_free_port("the Tansu broker", |port| {
            spawn_tansu(port, "memory://tansu/", dir.path())
        });
        Self {
            child,
            port,
            _dir: dir,
        }
    }

    /// A broker on `port` that keeps its data in `dir/broker.db` across restarts.
    pub fn start_persistent(port: u16, dir: &Path) -> Self {
        let mut child = spawn_tansu(port, "sqlite://broker.db", dir);
        assert_eq!(
            answers(&mut child, port, Duration::from_secs(30)),
            Some(true),
            "the Tansu broker did not start on port {port}"
        );
        Self {
            child,
            port,
            _dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// Starts Tansu on `port`; it reads a `sqlite://` path relative to its working directory, `dir`.
fn spawn_tansu(port: u16, storage: &str, dir: &Path) -> Child {
    Command::new(tansu_binary())
        .args([
            "broker",
            "--listener-url",
            &format!("tcp://127.0.0.1:{port}"),
            "--advertised-listener-url",
            &format!("tcp://127.0.0.1:{port}"),
            "--storage-engine",
            storage,
        ])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tansu starts")
}

/// Whether `child` answers on `port` within `timeout`: `Some(true)` when it does, `Some(false)`
/// when it exits first, `None` when time runs out.
fn answers(child: &mut Child, port: u16, timeout: Duration) -> Option<bool> {
    wait_for_opt(timeout, || {
        if let Ok(Some(_)) = child.try_wait() {
            return Some(false);
        }
        std::net::TcpStream::connect(("127.0.0.1", port))
            .ok()
            .map(|_| child.try_wait().is_ok_and(|exited| exited.is_none()))
    })
}

/// Starts a server process on a port that was free a moment ago; when the process exits before
/// it answers (another process took the port in between), tries again on another port.
fn start_on_free_port(what: &str, mut spawn: impl FnMut(u16) -> Child) -> (Child, u16) {
    for _ in 0..5 {
        let port = free_port();
        let mut child = spawn(port);
        if answers(&mut child, port, Duration::from_secs(30)) == Some(true) {
            return (child, port);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("{what} did not start on any of 5 free ports");
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Settings shared by the opslake processes of one test.
#[derive(Clone)]
pub struct Setup {
    pub brokers: String,
    /// The lake: a directory, or an object store URL.
    pub lake: PathBuf,
    /// Prefix of this test's topics, so tests can share a broker.
    pub prefix: String,
    pub group: String,
    /// Extra environment of every process (object store credentials and endpoint).
    pub env: Vec<(String, String)>,
}

impl Setup {
    pub fn new(broker: &Broker, lake: &Path, prefix: &str) -> Self {
        Self {
            brokers: broker.addr(),
            lake: lake.to_path_buf(),
            prefix: prefix.to_string(),
            group: format!("{prefix}-ingest"),
            env: Vec::new(),
        }
    }

    /// The same, with the lake in `bucket` of an S3 server.
    pub fn on_s3(broker: &Broker, s3: &S3Endpoint, bucket: &str, prefix: &str) -> Self {
        let mut s = Self::new(broker, Path::new(&format!("s3://{bucket}/lake")), prefix);
        s.env = s3.env();
        s
    }

    pub fn topic(&self, kind: &str) -> String {
        format!("{}.{kind}", self.prefix)
    }

    fn envs(&self) -> Vec<(String, String)> {
        vec![
            ("OPSLAKE_BROKERS".into(), self.brokers.clone()),
            ("OPSLAKE_LAKE".into(), self.lake.display().to_string()),
            ("OPSLAKE_INGEST__GROUP_ID".into(), self.group.clone()),
            (
                "OPSLAKE_INGEST__TOPICS__METRICS".into(),
                self.topic("metrics"),
            ),
            ("OPSLAKE_INGEST__TOPICS__LOGS".into(), self.topic("logs")),
            (
                "OPSLAKE_INGEST__TOPICS__BILLING".into(),
                self.topic("billing"),
            ),
            (
                "OPSLAKE_INGEST__TOPICS__OTLP_METRICS".into(),
                self.topic("otlp_metrics"),
            ),
            (
                "OPSLAKE_INGEST__TOPICS__OTLP_LOGS".into(),
                self.topic("otlp_logs"),
            ),
            (
                "OPSLAKE_INGEST__TOPICS__DEAD_LETTER".into(),
                self.topic("dead-letter"),
            ),
            ("OPSLAKE_INGEST__SESSION_TIMEOUT".into(), "6s".into()),
            ("OPSLAKE_INGEST__FLUSH_INTERVAL".into(), "500ms".into()),
            ("OPSLAKE_INGEST__MAX_POLL_INTERVAL".into(), "10s".into()),
            ("OPSLAKE_INGEST__PARTITIONS".into(), "3".into()),
            ("RUST_LOG".into(), "info,rdkafka=warn".into()),
        ]
        .into_iter()
        .chain(self.env.iter().cloned())
        .collect()
    }

    /// Runs `opslake produce <args> --no-progress` against this setup's broker and topics;
    /// answers what it printed.
    pub fn produce(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_opslake"))
            .arg("produce")
            .args(args)
            .arg("--no-progress")
            .envs(self.envs())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts `opslake <role>`; for roles that serve, waits until the API answers.
    pub fn spawn(&self, role: &str, extra_env: &[(&str, &str)]) -> Opslake {
        self.spawn_inner(role, extra_env, matches!(role, "run" | "serve"))
    }

    /// Starts `opslake <role>` and waits until it answers HTTP (the API, or for `ingest` and
    /// `process` their health and metrics endpoints).
    pub fn spawn_listening(&self, role: &str, extra_env: &[(&str, &str)]) -> Opslake {
        self.spawn_inner(role, extra_env, true)
    }

    fn spawn_inner(&self, role: &str, extra_env: &[(&str, &str)], serves: bool) -> Opslake {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_opslake"));
        cmd.arg(role).arg("--listen").arg("127.0.0.1:0");
        for (k, v) in self.envs() {
            cmd.env(k, v);
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("opslake starts");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let (sql_tx, sql_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line
                    .strip_prefix("opslake API listening on ")
                    .or_else(|| line.strip_prefix("opslake health and metrics listening on "))
                {
                    let _ = tx.send(addr.to_string());
                } else if let Some(addr) = line.strip_prefix("opslake PostgreSQL listening on ") {
                    let addr = addr.trim_start_matches("postgres://");
                    let _ = sql_tx.send(("pg", addr.split(' ').next().unwrap_or("").to_string()));
                } else if let Some(addr) = line.strip_prefix("opslake Flight SQL listening on ") {
                    let _ = sql_tx.send(("flight", addr.trim_start_matches("grpc://").to_string()));
                }
            }
        });
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let log2 = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("ECHO_OPSLAKE_LOGS").is_some() {
                    eprintln!("[opslake] {line}");
                }
                let mut l = log2.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let url = if serves {
            let addr = rx
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| {
                    panic!(
                        "opslake {role} did not start serving; log:\n{}",
                        log.lock().unwrap()
                    )
                });
            Some(addr)
        } else {
            None
        };
        // The SQL protocols print their addresses before the API does.
        let (mut pg, mut flight) = (None, None);
        for (kind, addr) in sql_rx.try_iter() {
            match kind {
                "pg" => pg = Some(addr),
                _ => flight = Some(addr),
            }
        }
        Opslake {
            child,
            url,
            pg,
            flight,
            log,
        }
    }
}

/// A running opslake process; killed on drop.
pub struct Opslake {
    pub child: Child,
    pub url: Option<String>,
    /// Where the PostgreSQL wire protocol listens (`host:port`), when it does.
    pub pg: Option<String>,
    /// Where Flight SQL listens (`host:port`), when it does.
    pub flight: Option<String>,
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Opslake {
    /// `kill -9`.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.code();
            }
            if Instant::now() > deadline {
                self.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn api(&self) -> Api {
        Api {
            base: self.url.clone().expect("this role serves the API"),
            token: None,
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Opslake {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The HTTP API of one process.
pub struct Api {
    pub base: String,
    /// The bearer token queries carry, when the API asks for one.
    pub token: Option<String>,
}

impl Api {
    pub fn client() -> reqwest::blocking::Client {
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap()
    }

    /// `POST /api/v1/sql`, JSON answer; panics unless 200.
    pub fn sql(&self, sql: &str) -> Value {
        let (status, body) = self.sql_status(sql);
        assert_eq!(status, 200, "{sql}: {body}");
        body
    }

    pub fn sql_status(&self, sql: &str) -> (u16, Value) {
        let mut r = Self::client()
            .post(format!("{}/api/v1/sql", self.base))
            .json(&json!({ "sql": sql }));
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        let r = r.send().unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    /// The rows of a query.
    pub fn rows(&self, sql: &str) -> Vec<Vec<Value>> {
        let body = self.sql(sql);
        body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_array().unwrap().clone())
            .collect()
    }

    /// The single integer a query answers.
    pub fn count(&self, sql: &str) -> i64 {
        self.rows(sql)[0][0].as_i64().unwrap()
    }

    /// Waits (2 minutes at most) until the 1-minute metric rollups count `events` samples.
    pub fn wait_for_rollups_of(&self, events: usize) {
        wait_for(
            "every event in the rollups",
            Duration::from_secs(120),
            || {
                (self.count("SELECT coalesce(sum(count), 0) FROM metric_rollups_1m")
                    == events as i64)
                    .then_some(())
            },
        );
    }

    pub fn get(&self, path: &str) -> reqwest::blocking::Response {
        Self::client()
            .get(format!("{}{path}", self.base))
            .send()
            .unwrap()
    }
}

/// A plain Kafka producer for test events.
pub struct TestProducer {
    producer: BaseProducer,
}

impl TestProducer {
    pub fn new(brokers: &str) -> Self {
        Self::with_linger(brokers, 5)
    }

    /// A producer that waits up to `linger_ms` to fill a record batch: with a fast sender,
    /// batches of thousands of messages.
    pub fn with_linger(brokers: &str, linger_ms: u32) -> Self {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("linger.ms", linger_ms.to_string())
            .create()
            .unwrap();
        Self { producer }
    }

    /// Sends `events` to `topic` as JSON arrays of 500, and waits for the broker to hold them.
    pub fn send_all(&self, topic: &str, events: &[Value]) {
        for chunk in events.chunks(500) {
            self.send(
                topic,
                None,
                Value::from(chunk.to_vec()).to_string().as_bytes(),
            );
        }
        self.flush();
    }

    pub fn send(&self, topic: &str, key: Option<&str>, value: &[u8]) {
        let mut rec: BaseRecord<'_, str, [u8]> = BaseRecord::to(topic).payload(value);
        if let Some(k) = key {
            rec = rec.key(k);
        }
        loop {
            match self.producer.send(rec) {
                Ok(()) => break,
                Err((_, r)) => {
                    self.producer.poll(Duration::from_millis(20));
                    rec = r;
                }
            }
        }
        self.producer.poll(Duration::ZERO);
    }

    pub fn flush(&self) {
        self.producer.flush(Duration::from_secs(30)).unwrap();
    }
}

/// Creates the test's topics with `partitions` partitions (opslake would create them too).
pub fn create_topics(setup: &Setup, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &setup.brokers)
        .create()
        .unwrap();
    let names: Vec<String> = ["metrics", "logs", "billing", "dead-letter"]
        .iter()
        .map(|k| setup.topic(k))
        .collect();
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(admin.create_topics(&topics, &AdminOptions::new()))
        .unwrap();
}

/// Where an S3 server answers, and the credentials opslake uses for it.
#[derive(Clone)]
pub struct S3Endpoint {
    pub port: u16,
}

impl S3Endpoint {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment opslake reads the object store's settings from.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), "test".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_ENDPOINT".into(), self.url()),
            ("AWS_ALLOW_HTTP".into(), "true".into()),
        ]
    }

    /// Creates a bucket (S3 `CreateBucket`).
    pub fn create_bucket(&self, bucket: &str) {
        let r = reqwest::blocking::Client::new()
            .put(format!("{}/{bucket}", self.url()))
            .send()
            .unwrap();
        assert!(r.status().is_success(), "create bucket: {}", r.status());
    }
}

/// An S3-compatible server: moto's (`pip install 'moto[server]'`), a real process on a free
/// port; killed on drop.
pub struct S3Server {
    child: Child,
    pub endpoint: S3Endpoint,
}

impl S3Server {
    /// moto's S3 server on a free port (`scripts/test.sh` installs it: `pip install
    /// 'moto[server]'`).
    pub fn start() -> Self {
        let (child, port) = start_on_free_port("moto's S3 server", |port| {
            Command::new("python3")
                .args([
                    "-m",
                    "moto.server",
                    "-H",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("python3 starts")
        });
        Self {
            child,
            endpoint: S3Endpoint { port },
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for_opt<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// A TCP proxy in front of a server, which the test can take down (listener closed, open
/// connections cut: clients get refused) and bring back on the same port.
pub struct Proxy {
    pub port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Proxy {
    pub fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let p = Self {
            port,
            up: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true)),
            conns: std::sync::Arc::default(),
        };
        p.serve(listener, target);
        p
    }

    fn serve(&self, listener: TcpListener, target: u16) {
        let up = std::sync::Arc::clone(&self.up);
        let conns = std::sync::Arc::clone(&self.conns);
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || loop {
            if !up.load(std::sync::atomic::Ordering::SeqCst) {
                return; // dropping the listener refuses new connections
            }
            match listener.accept() {
                Ok((client, _)) => {
                    client.set_nonblocking(false).unwrap();
                    let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", target)) else {
                        continue;
                    };
                    conns.lock().unwrap().push(client.try_clone().unwrap());
                    conns.lock().unwrap().push(server.try_clone().unwrap());
                    for (mut a, mut b) in [
                        (client.try_clone().unwrap(), server.try_clone().unwrap()),
                        (server, client),
                    ] {
                        std::thread::spawn(move || {
                            let _ = std::io::copy(&mut a, &mut b);
                            let _ = b.shutdown(std::net::Shutdown::Both);
                        });
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        });
    }

    /// Refuses connections and cuts the open ones until [`Proxy::up`].
    pub fn down(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    /// Serves again on the same port.
    pub fn up(&self, target: u16) {
        let listener = wait_for("the proxy's port again", Duration::from_secs(10), || {
            TcpListener::bind(("127.0.0.1", self.port)).ok()
        });
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
        self.serve(listener, target);
    }
}

/// Runs `tests/clients/sql_clients.py` with `args` and the requests on stdin.
pub fn python_client(args: &[&str], requests: &Value) -> Vec<Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/sql_clients.py");
    let mut child = Command::new("python3")
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(requests.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{} {args:?}: {}",
        script,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}
