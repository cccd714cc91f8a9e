#!/usr/bin/env bash
# Runs each fuzz target for a bounded time (default 60 s each), from its committed corpus in
# fuzz/corpus/<target>; installs cargo-fuzz when missing. What a run finds is added to the
# corpus (commit it); a crash fails the run, its input under fuzz/artifacts/<target>/.
#   scripts/fuzz.sh [seconds] [target ...]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(decode otlp sketch)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --version 0.13.1 --locked
cd fuzz
for t in "${targets[@]}"; do
  echo "== fuzz $t (${seconds}s)"
  log="$(mktemp)"
  # cargo-fuzz needs nightly flags (sanitizers); RUSTC_BOOTSTRAP lets the stable toolchain take them.
  if ! RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$seconds" \
      -rss_limit_mb=4096 >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz target $t failed (a crash's input is under fuzz/artifacts/$t/)" >&2
    exit 1
  fi
  grep -E "^#[0-9]+\s+DONE|^Done [0-9]+ runs" "$log" | tail -n 2
  rm -f "$log"
done
