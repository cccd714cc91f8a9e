//! The deployment files of `deploy/`. Docker and Kubernetes are not available to the tests, so
//! they are checked as far as the files allow: every file parses, the Kubernetes manifests
//! validate against the Kubernetes schemas (`kubernetes-validate` from PyPI), and every image,
//! port, path, environment variable, setting, command and flag they name exists in opslake —
//! asked of the real binary, and for paths and metrics, of running roles.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde::Deserialize;
use serde_yaml::Value as Yaml;

use crate::support::{wait_for, Api, Broker, Setup};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// Every document of a YAML file, with `<<:` merge keys applied (compose's anchors).
fn yaml_docs(path: &Path) -> Vec<Yaml> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| {
            let mut v = Yaml::deserialize(d)
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
            v.apply_merge()
                .unwrap_or_else(|e| panic!("{}: bad merge key: {e}", path.display()));
            v
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Runs the opslake binary with `env` and no `OPSLAKE_*` variables from the test's own
/// environment.
fn opslake(args: &[&str], env: &[(String, String)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_opslake"));
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("OPSLAKE_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("opslake runs")
}

fn s(v: &Yaml) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, found {v:?}"))
}

fn strings(v: &Yaml) -> Vec<String> {
    match v {
        Yaml::Sequence(items) => items.iter().map(|i| s(i).to_owned()).collect(),
        Yaml::String(line) => line.split_whitespace().map(str::to_owned).collect(),
        Yaml::Null => Vec::new(),
        other => panic!("expected a command, found {other:?}"),
    }
}

/// The command line of a container: the subcommand must exist and every `--flag` must be one
/// that subcommand takes.
fn check_command(args: &[String], context: &str) {
    let sub = args
        .first()
        .unwrap_or_else(|| panic!("{context}: no opslake command"));
    let help = opslake(&[sub, "--help"], &[]);
    assert!(
        help.status.success(),
        "{context}: `opslake {sub}` is not a command: {}",
        String::from_utf8_lossy(&help.stderr)
    );
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    for flag in args.iter().filter(|a| a.starts_with("--")) {
        let name = flag.split('=').next().unwrap();
        assert!(
            help.split_whitespace()
                .any(|w| w.trim_end_matches(',') == name),
            "{context}: `opslake {sub}` has no flag {name}:\n{help}"
        );
    }
}

/// `opslake config` accepts the settings (a TOML file and/or `OPSLAKE_*` variables) and
/// reflects every variable in the effective configuration, so none is silently ignored.
/// Returns the effective configuration.
/// The ports of the PostgreSQL and Flight SQL listeners the settings turn on.
fn sql_protocol_ports(effective: &toml::Table) -> BTreeSet<u16> {
    ["pg_listen", "flight_listen"]
        .iter()
        .filter_map(|k| effective.get(*k).and_then(|v| v.as_str()))
        .map(port_of)
        .collect()
}

fn check_settings(file: Option<&Path>, env: &[(String, String)], context: &str) -> toml::Table {
    let mut args = vec!["config"];
    let file_arg;
    if let Some(f) = file {
        file_arg = f.display().to_string();
        args.extend(["--config", &file_arg]);
    }
    let out = opslake(&args, env);
    assert!(
        out.status.success(),
        "{context}: opslake refuses the settings: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let effective: toml::Table = toml::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
    for (k, v) in env.iter().filter(|(k, _)| k.starts_with("OPSLAKE_")) {
        let path: Vec<String> = k["OPSLAKE_".len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        let mut table = &effective;
        let mut at = None;
        for (i, p) in path.iter().enumerate() {
            let v = table
                .get(p)
                .unwrap_or_else(|| panic!("{context}: {k} names no setting ({p})"));
            if i + 1 == path.len() {
                at = Some(v);
            } else {
                table = v
                    .as_table()
                    .unwrap_or_else(|| panic!("{context}: {k}: {p} is not a section"));
            }
        }
        let at = at.unwrap();
        let shown = match at {
            toml::Value::String(s) => s.clone(),
            toml::Value::Array(a) => serde_json::to_string(
                &a.iter()
                    .map(|x| x.as_str().unwrap_or_default().to_owned())
                    .collect::<Vec<_>>(),
            )
            .unwrap(),
            other => other.to_string(),
        };
        if k == "OPSLAKE_API_TOKEN" {
            assert_eq!(shown, "<redacted>", "{context}: the token is shown");
        } else {
            assert_eq!(&shown, v, "{context}: {k} is not what opslake runs with");
        }
    }
    effective
}

/// Object-store variables must be ones `object_store` reads from the environment.
fn check_object_store_env(env: &[(String, String)], context: &str) {
    use std::str::FromStr;
    for (k, _) in env.iter().filter(|(k, _)| k.starts_with("AWS_")) {
        assert!(
            object_store::aws::AmazonS3ConfigKey::from_str(&k.to_ascii_lowercase()).is_ok(),
            "{context}: {k} is not an S3 setting object_store knows"
        );
    }
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// Third-party images carry a version, so a deployment is reproducible.
fn check_pinned(image: &str, context: &str) {
    let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
    assert!(
        !tag.is_empty() && tag != "latest" && !tag.contains('/'),
        "{context}: image {image} is not pinned to a version"
    );
}

#[test]
fn every_deploy_file_parses() {
    let mut files = Vec::new();
    files_under(&deploy_dir(), &mut files);
    let mut checked = 0;
    for f in &files {
        match f.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => {
                assert!(!yaml_docs(f).is_empty(), "{} is empty", f.display());
                checked += 1;
            }
            Some("json") => {
                let v: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(f).unwrap())
                        .unwrap_or_else(|e| panic!("{} does not parse: {e}", f.display()));
                assert!(v.is_object(), "{}", f.display());
                checked += 1;
            }
            _ => {}
        }
    }
    // compose, prometheus, 2 provisioning files, 3 dashboards, 7 Kubernetes files.
    assert!(checked >= 14, "only {checked} files under deploy/");
}

/// `kubernetes-validate --strict` (PyPI), run as a module so pip's script directory need not be
/// on PATH.
fn kubernetes_validate() -> Command {
    let mut cmd = Command::new("python3");
    cmd.args(["-m", "kubernetes_validate", "--strict"]);
    cmd
}

#[test]
fn kubernetes_manifests_match_the_kubernetes_schemas() {
    let dir = deploy_dir().join("k8s");
    let kustomization = &yaml_docs(&dir.join("kustomization.yaml"))[0];
    let listed: BTreeSet<String> = kustomization["resources"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| s(r).to_owned())
        .collect();
    let mut present = BTreeSet::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if name != "kustomization.yaml" {
            present.insert(name);
        }
    }
    assert_eq!(listed, present, "kustomization.yaml lists every manifest");

    let manifests: Vec<PathBuf> = listed.iter().map(|f| dir.join(f)).collect();
    let mut resources = Vec::new();
    for m in &manifests {
        for doc in yaml_docs(m) {
            let ns = doc["metadata"]["namespace"].as_str();
            if doc["kind"] != "Namespace" {
                assert_eq!(ns, Some("opslake"), "{}: namespace", m.display());
            }
            resources.push(format!(
                "{}/{}",
                s(&doc["kind"]).to_ascii_lowercase(),
                s(&doc["metadata"]["name"])
            ));
        }
    }
    let out = kubernetes_validate().args(&manifests).output().expect(
        "kubernetes-validate is installed (pip install kubernetes-validate; scripts/test.sh \
             does)",
    );
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{report}");
    for r in &resources {
        assert!(
            report.contains(&format!("passed for resource {r} ")),
            "{r} was not validated:\n{report}"
        );
    }
    assert!(resources.len() >= 11, "{resources:?}");

    // The validator does catch a broken manifest (a misspelt field), so its pass means something.
    let broken = tempfile::tempdir().unwrap();
    let bad = broken.path().join("ingest.yaml");
    let text = std::fs::read_to_string(dir.join("ingest.yaml")).unwrap();
    assert!(text.contains("containerPort:"));
    std::fs::write(&bad, text.replace("containerPort:", "containerPorts:")).unwrap();
    let out = kubernetes_validate().arg(&bad).output().unwrap();
    assert!(!out.status.success(), "a misspelt field passed validation");
}

#[test]
fn kubernetes_names_only_what_opslake_has() {
    let dir = deploy_dir().join("k8s");
    let mut docs = Vec::new();
    for f in [
        "configmap.yaml",
        "secret.yaml",
        "ingest.yaml",
        "processor.yaml",
        "serve.yaml",
    ] {
        docs.extend(yaml_docs(&dir.join(f)));
    }
    let of_kind = |k: &'static str| docs.iter().filter(move |d| d["kind"] == k);

    // The settings: the ConfigMap's file with the Secret's variables.
    let configmap = of_kind("ConfigMap").next().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut config_files = BTreeMap::new();
    for (name, text) in configmap["data"].as_mapping().unwrap() {
        let path = tmp.path().join(s(name));
        std::fs::write(&path, s(text)).unwrap();
        config_files.insert(s(name).to_owned(), path);
    }
    let secret = of_kind("Secret").next().unwrap();
    let secret_env: Vec<(String, String)> = secret["stringData"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| (s(k).to_owned(), s(v).to_owned()))
        .collect();
    check_object_store_env(&secret_env, "secret.yaml");
    let effective = check_settings(
        Some(&config_files["opslake.toml"]),
        &secret_env,
        "configmap.yaml + secret.yaml",
    );
    let listen_port = port_of(effective["listen"].as_str().unwrap());
    assert!(effective["lake"].as_str().unwrap().starts_with("s3://"));

    let mut roles = BTreeSet::new();
    for d in of_kind("Deployment") {
        let name = s(&d["metadata"]["name"]);
        let spec = &d["spec"]["template"]["spec"];
        let labels = &d["spec"]["template"]["metadata"]["labels"];
        for (k, v) in d["spec"]["selector"]["matchLabels"].as_mapping().unwrap() {
            assert_eq!(&labels[s(k)], v, "{name}: selector matches the pods");
        }
        let mounts: BTreeMap<String, String> = spec["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter(|v| v["configMap"]["name"] == configmap["metadata"]["name"])
            .map(|v| (s(&v["name"]).to_owned(), String::new()))
            .collect();
        for c in spec["containers"].as_sequence().unwrap() {
            let context = format!("deployment {name}");
            assert_eq!(
                s(&c["image"]),
                format!("opslake:{}", env!("CARGO_PKG_VERSION")),
                "{context}: the image is this version of opslake"
            );
            let args = strings(&c["args"]);
            check_command(&args, &context);
            roles.insert(args[0].clone());
            // --config names the ConfigMap's file where it is mounted.
            let config = args
                .iter()
                .position(|a| a == "--config")
                .map(|i| args[i + 1].clone())
                .unwrap_or_else(|| panic!("{context}: no --config"));
            let mounted = c["volumeMounts"]
                .as_sequence()
                .unwrap()
                .iter()
                .find(|m| mounts.contains_key(s(&m["name"])))
                .unwrap_or_else(|| panic!("{context}: the ConfigMap is not mounted"));
            let (dir, file) = config.rsplit_once('/').unwrap();
            assert_eq!(dir, s(&mounted["mountPath"]), "{context}: --config");
            assert!(config_files.contains_key(file), "{context}: {file}");
            // Ports, probes and the scrape annotation name the port opslake listens on.
            let ports = c["ports"].as_sequence().unwrap();
            assert_eq!(ports[0]["containerPort"].as_u64(), Some(listen_port as u64));
            let port_name = s(&ports[0]["name"]);
            for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
                assert_eq!(s(&c[probe]["httpGet"]["path"]), path, "{context}: {probe}");
                assert_eq!(s(&c[probe]["httpGet"]["port"]), port_name, "{context}");
            }
            let ann = &d["spec"]["template"]["metadata"]["annotations"];
            assert_eq!(s(&ann["prometheus.io/port"]), listen_port.to_string());
            assert_eq!(s(&ann["prometheus.io/path"]), "/metrics");
            assert!(
                c["resources"]["requests"]["cpu"].as_u64().is_some()
                    || c["resources"]["requests"]["cpu"].as_str().is_some(),
                "{context}: resource requests"
            );
            assert!(c["resources"]["requests"]["memory"].as_str().is_some());
            assert_eq!(
                c["envFrom"][0]["secretRef"]["name"],
                secret["metadata"]["name"]
            );
            // Variables set on the container are opslake settings (a value from the pod, such
            // as its name, is checked with a stand-in).
            let env: Vec<(String, String)> = c["env"]
                .as_sequence()
                .into_iter()
                .flatten()
                .map(|e| {
                    let value = e["value"].as_str().unwrap_or("value-from-the-pod");
                    (s(&e["name"]).to_owned(), value.to_owned())
                })
                .collect();
            // With the secret's variables (the API token among them: a pod that listens on
            // every address needs it).
            let all_env: Vec<(String, String)> = secret_env.iter().chain(&env).cloned().collect();
            check_settings(None, &all_env, &context);
            // Any further port is where the container's settings put PostgreSQL or Flight SQL.
            let mine = check_settings(Some(&config_files[file]), &all_env, &context);
            let sql_ports = sql_protocol_ports(&mine);
            for p in &ports[1..] {
                let port = p["containerPort"].as_u64().unwrap() as u16;
                assert!(sql_ports.contains(&port), "{context}: port {port}");
            }
        }
        // Every Deployment has a disruption budget selecting its pods.
        let pdb = of_kind("PodDisruptionBudget")
            .find(|p| p["spec"]["selector"]["matchLabels"] == d["spec"]["selector"]["matchLabels"])
            .unwrap_or_else(|| panic!("{name}: no PodDisruptionBudget"));
        assert!(pdb["spec"]["minAvailable"].as_u64().is_some());
    }
    assert_eq!(
        roles,
        BTreeSet::from(["ingest".into(), "process".into(), "serve".into()]),
        "one Deployment per role"
    );

    // The Service reaches the API's named port on the serve pods.
    let service = of_kind("Service").next().unwrap();
    let serve = of_kind("Deployment")
        .find(|d| strings(&d["spec"]["template"]["spec"]["containers"][0]["args"])[0] == "serve")
        .unwrap();
    for (k, v) in service["spec"]["selector"].as_mapping().unwrap() {
        assert_eq!(&serve["spec"]["template"]["metadata"]["labels"][s(k)], v);
    }
    assert_eq!(
        s(&service["spec"]["ports"][0]["targetPort"]),
        s(&serve["spec"]["template"]["spec"]["containers"][0]["ports"][0]["name"])
    );

    // Ingest scales on consumer lag, a metric ingest exports (checked live below).
    let hpa = of_kind("HorizontalPodAutoscaler").next().unwrap();
    assert_eq!(s(&hpa["spec"]["scaleTargetRef"]["name"]), "opslake-ingest");
    let metrics: Vec<&str> = hpa["spec"]["metrics"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|m| m["pods"]["metric"]["name"].as_str())
        .collect();
    assert_eq!(metrics, ["opslake_ingest_consumer_lag"]);
}

#[test]
fn compose_names_only_what_opslake_has() {
    let dir = deploy_dir();
    let compose = &yaml_docs(&dir.join("compose.yaml"))[0];
    let services = compose["services"].as_mapping().unwrap();
    let names: BTreeSet<&str> = services.keys().map(s).collect();
    let mut scraped_roles = BTreeMap::new();
    let mut built = false;
    for (name, svc) in services {
        let name = s(name);
        let context = format!("compose service {name}");
        let image = s(&svc["image"]);
        if let Some(deps) = svc["depends_on"].as_mapping() {
            for d in deps.keys() {
                assert!(names.contains(s(d)), "{context}: depends on {d:?}");
            }
        }
        if !image.starts_with("opslake:") {
            check_pinned(image, &context);
            continue;
        }
        assert_eq!(
            image, "opslake:latest",
            "{context}: the image compose builds"
        );
        if let Some(b) = svc["build"].as_mapping() {
            let ctx = dir.join(s(&b[&Yaml::from("context")]));
            assert!(ctx.join(s(&b[&Yaml::from("dockerfile")])).is_file());
            built = true;
        }
        let args = strings(&svc["command"]);
        check_command(&args, &context);
        let env: Vec<(String, String)> = svc["environment"]
            .as_mapping()
            .unwrap()
            .iter()
            .map(|(k, v)| (s(k).to_owned(), s(v).to_owned()))
            .collect();
        check_object_store_env(&env, &context);
        // A `--config` file is one the service mounts from deploy/.
        let file = args.iter().position(|a| a == "--config").map(|i| {
            let inside = &args[i + 1];
            let host = svc["volumes"]
                .as_sequence()
                .into_iter()
                .flatten()
                .map(s)
                .find_map(|v| {
                    let mut parts = v.split(':');
                    let (h, c) = (parts.next()?, parts.next()?);
                    (c == inside).then(|| dir.join(h))
                })
                .unwrap_or_else(|| panic!("{context}: {inside} is not mounted"));
            assert!(host.is_file(), "{context}: {}", host.display());
            host
        });
        let effective = check_settings(file.as_deref(), &env, &context);
        if args[0] == "produce" {
            continue;
        }
        let port = port_of(effective["listen"].as_str().unwrap());
        let health = strings(&svc["healthcheck"]["test"]).join(" ");
        assert!(
            health.contains(&format!("localhost:{port}/readyz")),
            "{context}: healthcheck {health}"
        );
        let sql_ports = sql_protocol_ports(&effective);
        for p in svc["ports"].as_sequence().into_iter().flatten() {
            let container: u16 = s(p).rsplit(':').next().unwrap().parse().unwrap();
            assert!(
                container == port || sql_ports.contains(&container),
                "{context}: published port {container}"
            );
        }
        scraped_roles.insert(name.to_owned(), (args[0].clone(), port));
    }
    assert!(built, "one opslake service builds the image");
    let roles: BTreeSet<&str> = scraped_roles.values().map(|(r, _)| r.as_str()).collect();
    assert_eq!(roles, BTreeSet::from(["ingest", "process", "serve"]));
    assert_eq!(
        scraped_roles
            .values()
            .filter(|(r, _)| r == "ingest")
            .count(),
        2,
        "two ingest instances"
    );

    // Prometheus scrapes every opslake service's /metrics, and nothing that is not one.
    let prom = &yaml_docs(&dir.join("prometheus.yml"))[0];
    let mut targets = BTreeSet::new();
    for job in prom["scrape_configs"].as_sequence().unwrap() {
        assert_eq!(s(&job["metrics_path"]), "/metrics");
        for sc in job["static_configs"].as_sequence().unwrap() {
            for t in sc["targets"].as_sequence().unwrap() {
                targets.insert(s(t).to_owned());
            }
        }
    }
    let expected: BTreeSet<String> = scraped_roles
        .iter()
        .map(|(n, (_, port))| format!("{n}:{port}"))
        .collect();
    assert_eq!(targets, expected, "prometheus.yml scrapes every role");

    // Grafana: the datasources point at compose services, the mounted paths exist, and every
    // dashboard uses a provisioned datasource.
    let grafana = &services[&Yaml::from("grafana")];
    for v in grafana["volumes"].as_sequence().unwrap() {
        let host = s(v).split(':').next().unwrap();
        assert!(dir.join(host).exists(), "grafana mounts {host}");
    }
    let ds = &yaml_docs(&dir.join("grafana/provisioning/datasources/opslake.yaml"))[0];
    let mut uids = BTreeSet::new();
    for d in ds["datasources"].as_sequence().unwrap() {
        uids.insert(s(&d["uid"]).to_owned());
        let url = s(&d["url"]);
        let host = url.trim_start_matches("http://").split('/').next().unwrap();
        let (svc, port) = host.split_once(':').unwrap();
        assert!(names.contains(svc), "datasource {url}: no service {svc}");
        if d["type"] == "simpod-json-datasource" {
            assert_eq!(
                scraped_roles[svc],
                ("serve".to_owned(), port.parse().unwrap())
            );
            assert!(url.ends_with("/grafana"), "{url}");
        }
    }
    let mut boards = Vec::new();
    files_under(&dir.join("grafana/dashboards"), &mut boards);
    for b in boards {
        let text = std::fs::read_to_string(&b).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut used = BTreeSet::new();
        collect_datasource_uids(&v, &mut used);
        assert!(!used.is_empty(), "{}", b.display());
        for u in used {
            assert!(uids.contains(&u), "{}: datasource {u}", b.display());
        }
    }
}

fn collect_datasource_uids(v: &serde_json::Value, out: &mut BTreeSet<String>) {
    match v {
        serde_json::Value::Object(m) => {
            if let Some(uid) = m
                .get("datasource")
                .and_then(|d| d.get("uid"))
                .and_then(|u| u.as_str())
            {
                if !uid.starts_with('$') && !uid.starts_with("-- ") {
                    out.insert(uid.to_owned());
                }
            }
            m.values().for_each(|x| collect_datasource_uids(x, out));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_datasource_uids(x, out)),
        _ => {}
    }
}

/// The paths the manifests probe and scrape answer on every role, and ingest exports the
/// metric its autoscaler follows.
#[test]
fn every_role_answers_its_probes_and_scrapes() {
    let broker = Broker::start();
    let lake = tempfile::tempdir().unwrap();
    let setup = Setup::new(&broker, lake.path(), "deploy");
    let client = Api::client();
    for role in ["ingest", "process", "serve"] {
        let p = setup.spawn_listening(role, &[]);
        let base = p.api().base;
        let get = |path: &str| client.get(format!("{base}{path}")).send().unwrap();
        assert_eq!(get("/healthz").status(), 200, "{role} /healthz");
        wait_for(&format!("{role} /readyz"), Duration::from_secs(60), || {
            (get("/readyz").status() == 200).then_some(())
        });
        let metrics = get("/metrics");
        assert_eq!(metrics.status(), 200, "{role} /metrics");
        assert!(
            metrics.text().unwrap().contains("# TYPE opslake_"),
            "{role}"
        );
        if role == "ingest" {
            wait_for("the consumer lag gauge", Duration::from_secs(60), || {
                get("/metrics")
                    .text()
                    .unwrap()
                    .contains("opslake_ingest_consumer_lag{")
                    .then_some(())
            });
        }
    }
}
