#!/usr/bin/env bash
# Runs every test: unit, property and end-to-end (real Tansu broker processes, a real S3 server
# process, real Parquet files, the real HTTP, PostgreSQL and Flight SQL servers). Installs Tansu,
# moto, kubernetes-validate, psycopg, ADBC, schemathesis and the OpenTelemetry SDK first when
# missing; Alertmanager, Chromium and psql from Debian.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/tansu.sh install
# The S3-compatible server of the object storage tests: moto's, from PyPI.
python3 -c "import moto.server" 2>/dev/null || python3 -m pip install -q 'moto[server]'
# The Kubernetes schemas the manifests of deploy/k8s are checked against.
python3 -c "import kubernetes_validate" 2>/dev/null || python3 -m pip install -q kubernetes-validate
# The PostgreSQL and Flight SQL clients of the SQL protocol tests: psycopg and ADBC's Flight SQL
# driver (with pyarrow) from PyPI, psql from Debian.
python3 -c "import psycopg, adbc_driver_flightsql.dbapi, pyarrow" 2>/dev/null \
  || python3 -m pip install -q 'psycopg[binary]' adbc-driver-flightsql adbc-driver-manager pyarrow
# Schemathesis, driven by the Grafana JSON datasource's own OpenAPI document (PyPI).
python3 -c "import schemathesis, yaml" 2>/dev/null || python3 -m pip install -q schemathesis pyyaml
# The OpenTelemetry SDK whose payloads the OTLP tests ingest (PyPI).
python3 -c "import opentelemetry.sdk.metrics, opentelemetry.exporter.otlp.proto.common" 2>/dev/null \
  || python3 -m pip install -q opentelemetry-sdk opentelemetry-exporter-otlp-proto-common
# The Delta Lake readers of the lake's Delta tables: delta-rs's Python package and Polars (PyPI).
python3 -c "import deltalake, polars" 2>/dev/null || python3 -m pip install -q deltalake polars
# Alertmanager, the peer the alerts tests notify: Debian's package,
# and the browser the console tests drive (headless, through WebDriver): Debian's chromium.
missing=()
command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null || missing+=(prometheus-alertmanager)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v psql >/dev/null || missing+=(postgresql-client)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} (apt)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
cargo test --workspace --no-fail-fast "$@"
