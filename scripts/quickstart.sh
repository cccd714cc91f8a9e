#!/usr/bin/env bash
# The whole pipeline on this machine with demo data: a local Tansu broker on 127.0.0.1:9092,
# `opslake run` with the lake in ./lake and the API on 127.0.0.1:8080, three days of backfilled
# history, then live demo traffic. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
BROKER_PORT="${OPSLAKE_QUICKSTART_BROKER_PORT:-9092}"
# Every other OPSLAKE_* variable is configuration, and opslake refuses keys it does not know.
unset OPSLAKE_QUICKSTART_BROKER_PORT
export OPSLAKE_BROKERS="127.0.0.1:$BROKER_PORT"
export OPSLAKE_LAKE="${OPSLAKE_LAKE:-./lake}"
export OPSLAKE_LISTEN="${OPSLAKE_LISTEN:-127.0.0.1:8080}"
export OPSLAKE_PG_LISTEN="${OPSLAKE_PG_LISTEN:-127.0.0.1:5433}"
export OPSLAKE_FLIGHT_LISTEN="${OPSLAKE_FLIGHT_LISTEN:-127.0.0.1:50051}"
state=.opslake
mkdir -p "$state"

echo "== 1/5 broker: tansu"
scripts/tansu.sh install
echo "== 2/5 build: opslake"
cargo build --bin opslake
bin="${CARGO_TARGET_DIR:-target}/debug/opslake"

pids=()
cleanup() {
  echo; echo "stopping..."
  # Newest first: traffic, then opslake (it flushes and leaves the group), then the broker.
  for ((i=${#pids[@]}-1; i>=0; i--)); do
    kill "${pids[$i]}" 2>/dev/null || true
    wait "${pids[$i]}" 2>/dev/null || true
  done
}
trap cleanup EXIT INT TERM

if (echo > "/dev/tcp/127.0.0.1/$BROKER_PORT") 2>/dev/null; then
  echo "a broker already listens on $BROKER_PORT; using it"
else
  scripts/tansu.sh start "$BROKER_PORT" "$state/broker" > "$state/tansu.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do (echo > "/dev/tcp/127.0.0.1/$BROKER_PORT") 2>/dev/null && break; sleep 0.2; done
fi

echo "== 3/5 opslake run (log: $state/opslake.log)"
"$bin" run > "$state/opslake.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 150); do curl -fsS "http://$OPSLAKE_LISTEN/healthz" >/dev/null 2>&1 && break; sleep 0.2; done

echo "== 4/5 demo data: six weeks of billing, three days of full history, then live traffic"
start=$(date -u -d '3 days ago' +%Y-%m-%dT%H:00:00Z)
"$bin" produce --only billing --start "$(date -u -d '45 days ago' +%Y-%m-%dT00:00:00Z)" \
  --end "$start" --step 1h --seed 1
"$bin" produce --start "$start" --step 2s --count 129600 --seed 1
"$bin" produce --rate 200 --seed 1 --no-progress > "$state/produce.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  n=$(curl -fsS "http://$OPSLAKE_LISTEN/api/v1/sql" -H 'content-type: application/json' \
      -d '{"sql":"SELECT count(*) FROM metrics"}' 2>/dev/null | sed -n 's/.*"rows":\[\[\([0-9]*\)\]\].*/\1/p')
  [ -n "${n:-}" ] && [ "$n" -gt 0 ] && break
  sleep 0.5
done

cat <<TXT
== 5/5 opslake is running
  console      http://$OPSLAKE_LISTEN/   (services, costs, alerts, SQL, pipeline: open it in a browser)
  API          http://$OPSLAKE_LISTEN/api/v1   (health: /healthz, readiness: /readyz, metrics: /metrics)
  tables       curl -s http://$OPSLAKE_LISTEN/api/v1/tables
  PostgreSQL   psql -h ${OPSLAKE_PG_LISTEN%:*} -p ${OPSLAKE_PG_LISTEN##*:} -U me -d opslake   (psql, DBeaver, Grafana, Metabase)
  Flight SQL   grpc://$OPSLAKE_FLIGHT_LISTEN   (ADBC, JDBC: docs/CONFIGURATION.md)
  lake         $OPSLAKE_LAKE
  broker       $OPSLAKE_BROKERS

Try:
  curl -s http://$OPSLAKE_LISTEN/api/v1/sql -H 'content-type: application/json' \\
    -d '{"sql": "SELECT service, sum(count) AS requests, round(quantile_merge(sketch, 0.99), 1) AS p99_ms FROM metric_rollups_1h WHERE name = '\''http.server.duration'\'' GROUP BY service ORDER BY p99_ms DESC"}'
  $bin sql "SELECT window_start, service, name, metric, round(observed, 1) AS observed, round(expected, 1) AS expected, severity FROM anomalies ORDER BY window_start DESC LIMIT 10"
  $bin sql "SELECT change_at, service, metric, round(change_pct, 1) AS change_pct, kind, version_before, version_after FROM regressions ORDER BY change_at"
  $bin sql "SELECT window_start, service, count, round(error_rate, 3) AS error_rate FROM log_rollups_1m ORDER BY window_start DESC LIMIT 10"
  $bin sql "SELECT level, count(*) FROM logs GROUP BY level ORDER BY 2 DESC"
  $bin sql "SELECT provider, round(sum(cost), 2) AS cost FROM cost_daily WHERE date >= current_date - 7 GROUP BY provider ORDER BY cost DESC"
  $bin sql "SELECT scope, key, round(sum(forecast), 2) AS next_30_days, round(sum(lower_80), 2) AS low, round(sum(upper_80), 2) AS high, min(method) AS method FROM cost_forecasts WHERE scope IN ('total', 'provider') GROUP BY scope, key ORDER BY next_30_days DESC"
  $bin sql "SELECT kind, resource_id, round(estimated_monthly_savings, 2) AS saves_per_month, recommendation FROM cost_opportunities ORDER BY saves_per_month DESC LIMIT 5"
  $bin report forecast --html report.html      # the cost forecast report now (also daily at 06:00 UTC)
  curl -s http://$OPSLAKE_LISTEN/api/v1/reports
  curl -s http://$OPSLAKE_LISTEN/api/v1/alerts    # active alerts (built-in: anomalies, regressions, pipeline)
  $bin sql "SELECT at, alertname, state, severity, annotations['summary'] AS summary FROM alerts ORDER BY at DESC LIMIT 10"
  $bin sql "SELECT labels['endpoint'] AS endpoint, count(*) FROM metrics WHERE labels['status'] = '500' GROUP BY 1"
  $bin produce --file ../shared/data/focus/focus_sample.csv        # replay a real FOCUS bill

Live traffic keeps flowing at 200 messages/s. Ctrl-C stops everything.
TXT
wait
