#!/usr/bin/env bash
# Runs every test: unit, property and end-to-end (real Tansu broker processes, a real S3 server
# process, real Parquet files, the real HTTP server). Installs Tansu, moto and
# kubernetes-validate first when missing; Alertmanager and Chromium from Debian.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/tansu.sh install
# The S3-compatible server of the object storage tests: moto's, from PyPI.
python3 -c "import moto.server" 2>/dev/null || python3 -m pip install -q 'moto[server]'
# The Kubernetes schemas the manifests of deploy/k8s are checked against.
python3 -c "import kubernetes_validate" 2>/dev/null || python3 -m pip install -q kubernetes-validate
# Alertmanager, the peer the alerts tests notify: Debian's package.
# and the browser the console tests drive (headless, through WebDriver): Debian's chromium.
missing=()
command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null || missing+=(prometheus-alertmanager)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} (apt)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
cargo test --workspace --no-fail-fast "$@"
