#!/usr/bin/env bash
# bench/forecast: out-of-sample accuracy of each forecasting method and of opslake's choice,
# against seasonal naive, on generated fleets and on NYC taxi demand (NAB) summed to days.
# Accuracy does not depend on the build profile, so the dev profile (no release build) is used.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run -q -p opslake-processor --example bench_forecast -- \
  "${1:-../shared/data/nab/data/realKnownCause/nyc_taxi.csv}"
