#!/usr/bin/env bash
# Runs every test: unit, property and end-to-end (real Tansu broker processes, a real S3 server
# process, real Parquet files, the real HTTP server). Installs Tansu and moto first when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/tansu.sh install
# The S3-compatible server of the object storage tests: moto's, from PyPI.
python3 -c "import moto.server" 2>/dev/null || python3 -m pip install -q 'moto[server]'
cargo test --workspace --no-fail-fast "$@"
