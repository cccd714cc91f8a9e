//! Secrets never print: `opslake config` and a debug log of `opslake run` configured with an
//! API token, Kafka passwords and a webhook URL show none of them.

use std::process::Command;
use std::time::Duration;

use crate::support::{wait_for, Api, Broker, Setup};

const TOKEN: &str = "tok-3f9a1c77e2";
const SASL: &str = "sasl-pw-81d2f0";
const KEY: &str = "key-pw-5be7a1";
const WEBHOOK: &str = "https://hooks.example.invalid/services/T000/B000/wh-secret-9c41";

fn assert_no_secret(text: &str, what: &str) {
    for secret in [TOKEN, SASL, KEY, "wh-secret-9c41"] {
        assert!(!text.contains(secret), "{what} shows {secret}:\n{text}");
    }
}

#[test]
fn opslake_config_and_debug_logs_show_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("opslake.toml");
    std::fs::write(
        &file,
        format!(
            "api_token = \"{TOKEN}\"\n[ingest.kafka]\n\"sasl.password\" = \"{SASL}\"\n\
             \"ssl.key.password\" = \"{KEY}\"\n\"client.id\" = \"opslake-test\"\n\
             [reports]\nwebhook_url = \"{WEBHOOK}\"\n"
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_opslake"))
        .args(["config", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    assert_no_secret(&shown, "opslake config");
    assert!(
        shown.contains("opslake-test"),
        "other properties are shown:\n{shown}"
    );
    assert_eq!(shown.matches("<redacted>").count(), 4, "{shown}");

    // The same settings in a running process, with debug logs.
    let broker = Broker::start();
    let lake = tempfile::tempdir().unwrap();
    let setup = Setup::new(&broker, lake.path(), "secrets");
    // (`ssl.key.password` is left out here: librdkafka built without OpenSSL refuses it.)
    let run_file = dir.path().join("run.toml");
    std::fs::write(
        &run_file,
        format!(
            "api_token = \"{TOKEN}\"\n[ingest.kafka]\n\"sasl.password\" = \"{SASL}\"\n\
             [reports]\nwebhook_url = \"{WEBHOOK}\"\n"
        ),
    )
    .unwrap();
    let config = run_file.display().to_string();
    let mut run = setup.spawn(
        "run",
        &[("RUST_LOG", "debug"), ("OPSLAKE_CONFIG", config.as_str())],
    );
    let api = run.api();
    wait_for("readiness", Duration::from_secs(60), || {
        (api.get("/readyz").status() == 200).then_some(())
    });
    let denied = Api::client()
        .post(format!("{}/api/v1/sql", api.base))
        .json(&serde_json::json!({"sql": "SELECT 1"}))
        .send()
        .unwrap();
    assert_eq!(denied.status(), 401);
    let allowed = Api::client()
        .post(format!("{}/api/v1/sql", api.base))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"sql": "SELECT 1"}))
        .send()
        .unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(run.terminate(), Some(0));
    let log = run.log();
    assert!(log.contains("DEBUG"), "debug logging was on");
    assert_no_secret(&log, "the debug log");
}
