//! Response bodies checked against OpenAPI documents: opslake's own, and the Grafana JSON
//! datasource's specification.

use std::path::Path;

use serde_json::{json, Value};

/// An OpenAPI 3.0 schema as JSON Schema: references resolved, `nullable` as a null type.
fn to_json_schema(v: &Value, components: &Value) -> Value {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get("$ref") {
                let name = r.rsplit('/').next().unwrap();
                return to_json_schema(&components[name], components);
            }
            let mut out = serde_json::Map::new();
            for (k, val) in o {
                if k == "nullable" || k == "example" || k == "examples" {
                    continue;
                }
                out.insert(k.clone(), to_json_schema(val, components));
            }
            if o.get("nullable") == Some(&json!(true)) {
                if let Some(Value::String(t)) = out.get("type").cloned() {
                    out.insert("type".into(), json!([t, "null"]));
                } else if let Some(all) = out.remove("allOf") {
                    return json!({"anyOf": [{"allOf": all}, {"type": "null"}]});
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| to_json_schema(x, components)).collect()),
        other => other.clone(),
    }
}

/// An OpenAPI document: response schemas by path and status.
/// An OpenAPI document whose response schemas check real answers.
pub struct Spec {
    doc: Value,
}

impl Spec {
    /// The Grafana JSON datasource's own specification (`../shared/data`).
    pub fn grafana() -> Self {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/data/grafana-json-datasource/openapi.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut doc: Value = serde_yaml::from_str(&text).unwrap();
        // Spec quirk: table `rows` are typed as scalars, but the plugin, its README and every
        // server send arrays of cells; check rows as arrays of strings, numbers and nulls.
        let table = &mut doc["paths"]["/query"]["post"]["responses"]["200"]["content"]
            ["application/json"]["schema"]["items"]["anyOf"][1]["properties"]["rows"];
        table["items"] = json!({"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "null"}]}});
        Self { doc }
    }

    /// opslake's document, as served.
    pub fn opslake(text: &str) -> Self {
        Self {
            doc: serde_json::from_str(text).unwrap(),
        }
    }

    /// The request example of `path`.
    pub fn example(&self, path: &str) -> Value {
        self.doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["example"]
            .clone()
    }

    /// Validates `body` against the schema of `path`'s `status` response (JSON content).
    /// Asserts that `body` matches the schema of `method path` answering `status`.
    pub fn check(&self, method: &str, path: &str, status: u16, body: &Value) {
        let schema = &self.doc["paths"][path][method]["responses"][status.to_string()]["content"]
            ["application/json"]["schema"];
        assert!(!schema.is_null(), "no schema for {method} {path} {status}");
        let schema = to_json_schema(schema, &self.doc["components"]["schemas"]);
        let v = jsonschema::validator_for(&schema).unwrap();
        let errors: Vec<String> = v.iter_errors(body).map(|e| e.to_string()).collect();
        assert!(
            errors.is_empty(),
            "{method} {path} {status} does not match its schema: {errors:?}\n{}",
            &body.to_string()[..body.to_string().len().min(2000)]
        );
    }
}

/// Schemathesis, driven by the Grafana JSON datasource's own document, against `/grafana` over
/// a lake with data: no server error, every answer as the document describes it, every request
/// the document calls valid answered 2xx (`tests/clients/grafana_schemathesis.py` says which
/// checks and why). It once found an unknown target answered with a table the document refuses.
#[test]
fn the_grafana_datasource_holds_to_its_document_under_schemathesis() {
    use opslake_lake::test_util::{commit_events, metric};
    let broker = crate::support::Broker::start();
    let lake = tempfile::tempdir().unwrap();
    let setup = crate::support::Setup::new(&broker, lake.path(), "schemathesis");
    let now = chrono::Utc::now().timestamp_millis();
    let events: Vec<_> = (0..600)
        .map(|i| {
            metric(
                now - 3_600_000 + i * 6_000,
                ["a", "b"][i as usize % 2],
                "latency",
                i as f64,
            )
        })
        .collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let l = opslake_lake::Lake::open(lake.path().to_str().unwrap()).unwrap();
    runtime
        .block_on(commit_events(&l, &setup.topic("metrics"), 0, &events))
        .unwrap();
    let server = setup.spawn("serve", &[]);
    let spec = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/grafana-json-datasource/openapi.yaml");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/grafana_schemathesis.py"
    );
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(format!("{}/grafana", server.api().base))
        .arg(spec)
        .output()
        .expect("python3 runs (scripts/test.sh installs schemathesis)");
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
