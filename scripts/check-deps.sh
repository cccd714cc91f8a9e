#!/usr/bin/env bash
# The dependency rules of STYLE.md that a build does not check: what reads the lake does not
# speak Kafka (the processor and the query side link no Kafka client), the decoders build
# without DataFusion (schemas, and the sketch without its SQL functions), and no two modules of
# a crate use each other (scripts/module-cycles.py).
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
forbid() { # crate, dependency, extra cargo tree flags
  local crate=$1 dep=$2
  shift 2
  if cargo tree -p "$crate" -e normal "$@" --prefix none 2>/dev/null | grep -q "^$dep v"; then
    echo "$crate depends on $dep:" >&2
    cargo tree -p "$crate" -e normal "$@" -i "$dep" 2>/dev/null | head -n 20 >&2
    fail=1
  else
    echo "ok: $crate does not depend on $dep"
  fi
}
forbid opslake-processor rdkafka
forbid opslake-processor opslake-kafka
forbid opslake-query-api rdkafka
forbid opslake-query-api opslake-kafka
forbid opslake-query-api opslake-ingest
forbid opslake-processor opslake-ingest
forbid opslake-schemas datafusion
forbid opslake-sketch datafusion --no-default-features
python3 scripts/module-cycles.py || fail=1
exit $fail
