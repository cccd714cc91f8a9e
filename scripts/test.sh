#!/usr/bin/env bash
# Runs every test: unit, property and end-to-end (real Tansu broker processes, real Parquet files,
# the real HTTP server). Installs Tansu first when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/tansu.sh install
cargo test --workspace --no-fail-fast "$@"
