#!/usr/bin/env bash
# The local Kafka-protocol broker for tests and the quickstart: Tansu (Apache-2.0, from crates.io).
#   scripts/tansu.sh install          install tansu 0.6.0 into ~/.cargo/bin unless it is there
#   scripts/tansu.sh start PORT [DIR] start a broker on 127.0.0.1:PORT; with DIR its data is kept
#                                     in DIR/broker.db across restarts, else in memory
set -euo pipefail
TANSU_VERSION=0.6.0
export PATH="$HOME/.cargo/bin:$PATH"

installed() {
  command -v tansu >/dev/null 2>&1 && tansu --version 2>/dev/null | grep -q "$TANSU_VERSION"
}

case "${1:-}" in
  install)
    if installed; then
      echo "tansu $TANSU_VERSION is installed: $(command -v tansu)"
    else
      echo "installing tansu $TANSU_VERSION from crates.io (about 8 minutes, once)..."
      cargo install tansu --locked --version "$TANSU_VERSION" --features dynostore,libsql
    fi
    ;;
  start)
    port="${2:?usage: tansu.sh start PORT [DATA_DIR]}"
    installed || "$0" install
    if [ -n "${3:-}" ]; then
      # Tansu reads a sqlite:// path relative to its working directory.
      mkdir -p "$3"
      cd "$3"
      storage="sqlite://broker.db"
    else
      storage="memory://tansu/"
    fi
    exec tansu broker --listener-url "tcp://127.0.0.1:$port" \
      --advertised-listener-url "tcp://127.0.0.1:$port" --storage-engine "$storage"
    ;;
  *)
    echo "usage: $0 install | start PORT [DATA_DIR]" >&2
    exit 2
    ;;
esac
