#!/usr/bin/env python3
"""bench/query: dashboard and ad hoc queries through opslake's HTTP API against DuckDB on the same
Parquet files, in one run; then a load run of concurrent dashboard requests.

1. writes a lake with `bench_lake` (N metric events over 48 hours, 90 days of a 200-resource
   bill), folds it with `opslake process --once` (rollups, costs, opportunities),
2. starts `opslake serve` (release) on loopback, result cache off for the comparison,
3. runs each query REPEAT times through POST /api/v1/sql and through DuckDB (pip, 2 threads,
   `read_parquet` with hive partitioning) on the same files; checks both give the same answer;
   prints the median latency of each and the ratio,
4. measures the API's own overhead (median of `SELECT 1` over HTTP),
5. load: CLIENTS concurrent clients send Grafana dashboard requests (POST /grafana/query, the
   shipped dashboard's latency and throughput panels) for SECONDS seconds, cache on; prints
   requests, errors and latency percentiles.

Usage: python3 bench/query.py [--events N] [--repeat K] [--clients C] [--seconds S]
Needs: cargo build --release --bin opslake -p opslake -p opslake-processor --example bench_lake
"""
import argparse
import concurrent.futures
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(ROOT, "target", os.environ.get("BENCH_PROFILE", "release"))
T0 = "2026-11-22T10:00:00"  # bench_lake's first metric event

# (name, opslake SQL, DuckDB SQL); {m}, {r1m}, {cd}, {co} are file globs for DuckDB.
QUERIES = [
    ("filter: one service, 6 hours",
     "SELECT count(*) AS n, round(avg(value), 6) AS mean FROM metrics "
     "WHERE service = 'service-03' AND timestamp >= TIMESTAMP '2026-11-23T04:00:00Z' "
     "AND timestamp < TIMESTAMP '2026-11-23T10:00:00Z'",
     "SELECT count(*) AS n, round(avg(value), 6) AS mean FROM read_parquet('{m}', hive_partitioning = true) "
     "WHERE service = 'service-03' AND \"timestamp\" >= TIMESTAMPTZ '2026-11-23 04:00:00+00' "
     "AND \"timestamp\" < TIMESTAMPTZ '2026-11-23 10:00:00+00'"),
    ("dashboard: p95 per service per 5 minutes over 6 hours (opslake: merged sketches; DuckDB: exact from raw)",
     "SELECT date_bin(INTERVAL '5 minutes', window_start, TIMESTAMP '1970-01-01T00:00:00Z') AS t, service, "
     "round(quantile_merge(sketch, 0.95), 0) AS p95 FROM metric_rollups_1m "
     "WHERE window_start >= TIMESTAMP '2026-11-23T04:00:00Z' AND window_start < TIMESTAMP '2026-11-23T10:00:00Z' "
     "AND date = '2026-11-23' GROUP BY 1, 2 ORDER BY 1, 2",
     "SELECT time_bucket(INTERVAL 5 minute, \"timestamp\") AS t, service, "
     "round(quantile_cont(value, 0.95), 0) AS p95 FROM read_parquet('{m}', hive_partitioning = true) "
     "WHERE \"timestamp\" >= TIMESTAMPTZ '2026-11-23 04:00:00+00' AND \"timestamp\" < TIMESTAMPTZ '2026-11-23 10:00:00+00' "
     "GROUP BY 1, 2 ORDER BY 1, 2"),
    ("dashboard: worst 1-minute p99 per service per hour, 2 days (same rollup files)",
     "SELECT date_trunc('hour', window_start) AS h, service, max(p99) AS worst FROM metric_rollups_1m "
     "GROUP BY 1, 2 ORDER BY 1, 2",
     "SELECT date_trunc('hour', window_start) AS h, service, max(p99) AS worst "
     "FROM read_parquet('{r1m}', hive_partitioning = true) GROUP BY 1, 2 ORDER BY 1, 2"),
    ("top-N: busiest endpoints of a day",
     "SELECT service, labels['endpoint'] AS endpoint, count(*) AS n FROM metrics WHERE date = '2026-11-23' "
     "GROUP BY 1, 2 ORDER BY n DESC, 1, 2 LIMIT 10",
     "SELECT service, labels['endpoint'] AS endpoint, count(*) AS n FROM read_parquet('{m}', hive_partitioning = true) "
     "WHERE date = '2026-11-23' GROUP BY 1, 2 ORDER BY n DESC, 1, 2 LIMIT 10"),
    ("scan: every event, per service",
     "SELECT service, count(*) AS n, round(avg(value), 6) AS mean, max(value) AS mx FROM metrics "
     "GROUP BY service ORDER BY service",
     "SELECT service, count(*) AS n, round(avg(value), 6) AS mean, max(value) AS mx "
     "FROM read_parquet('{m}', hive_partitioning = true) GROUP BY service ORDER BY service"),
    ("join: 30 days of cost with savings opportunities, per provider",
     "SELECT c.provider, round(sum(c.cost), 2) AS cost, count(DISTINCT o.resource_id) AS flagged "
     "FROM cost_daily c LEFT JOIN cost_opportunities o ON c.resource_id = o.resource_id "
     "WHERE c.date >= DATE '2026-10-23' GROUP BY 1 ORDER BY 1",
     "SELECT c.provider, round(sum(c.cost), 2) AS cost, count(DISTINCT o.resource_id) AS flagged "
     "FROM read_parquet('{cd}') c LEFT JOIN read_parquet('{co}') o ON c.resource_id = o.resource_id "
     "WHERE c.date >= DATE '2026-10-23' GROUP BY 1 ORDER BY 1"),
]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Client:
    """One keep-alive HTTP connection."""

    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def post(self, path, body):
        data = json.dumps(body)
        self.conn.request("POST", path, body=data, headers={"content-type": "application/json"})
        r = self.conn.getresponse()
        return r.status, r.read()


def median_ms(f, repeat):
    times = []
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = f()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), out


def normalize(rows):
    out = []
    for r in rows:
        row = []
        for v in r:
            if isinstance(v, float):
                v = round(v, 4)
            elif hasattr(v, "isoformat"):
                v = v.strftime("%Y-%m-%dT%H:%M:%S")
            elif isinstance(v, str) and len(v) >= 19 and v[4] == "-" and v[10] == "T":
                v = v[:19]
            row.append(v)
        out.append(tuple(row))
    return out


def start_serve(env, port):
    """Starts `opslake serve` with `env` and waits until it answers on `port`."""
    server = subprocess.Popen([os.path.join(REL, "opslake"), "serve"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            Client(port).post("/api/v1/sql", {"sql": "SELECT 1"})
            break
        except OSError:
            time.sleep(0.05)
    return server


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--seconds", type=int, default=20)
    args = ap.parse_args()
    try:
        import duckdb
        import pytz  # noqa: F401  (DuckDB needs it to return TIMESTAMPTZ values)
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "duckdb", "pytz"], check=True)
        import duckdb
    work = tempfile.mkdtemp(prefix="opslake-bench-query-")
    lake = os.path.join(work, "lake")
    server = None
    try:
        print(f"writing {args.events:,} events over 48 hours and 90 days of billing to {lake} ...", flush=True)
        subprocess.run([os.path.join(REL, "examples", "bench_lake"), lake, str(args.events), "1", "48", "90"],
                       check=True, stderr=subprocess.DEVNULL)
        t = time.perf_counter()
        subprocess.run([os.path.join(REL, "opslake"), "process", "--once", "--lake", lake], check=True,
                       stdout=subprocess.DEVNULL)
        print(f"rollups and costs folded in {time.perf_counter() - t:.1f} s", flush=True)

        port = free_port()
        env = dict(os.environ, OPSLAKE_LAKE=lake, OPSLAKE_LISTEN=f"127.0.0.1:{port}",
                   OPSLAKE_QUERY__CACHE_BYTES="0", OPSLAKE_QUERY__MAX_ROWS="1000000", RUST_LOG="warn")
        server = start_serve(env, port)
        api = Client(port)

        con = duckdb.connect()
        con.execute("SET threads = 2")
        globs = {
            "m": os.path.join(lake, "metrics", "*", "*", "*.parquet"),
            "r1m": os.path.join(lake, "metric_rollups_1m", "*", "*", "*.parquet"),
            "cd": os.path.join(lake, "cost_daily", "*.parquet"),
            "co": os.path.join(lake, "cost_opportunities", "*.parquet"),
        }

        overhead, _ = median_ms(lambda: api.post("/api/v1/sql", {"sql": "SELECT 1"}), 200)

        print()
        print(f"| query | opslake API (ms) | DuckDB (ms) | DuckDB / opslake | same answer |")
        print(f"|---|---:|---:|---:|---|")
        ratios = []
        for name, ours, theirs in QUERIES:
            def via_api():
                status, body = api.post("/api/v1/sql", {"sql": ours})
                if status != 200:
                    raise RuntimeError(f"{name}: {status} {body[:300]}")
                return json.loads(body)["rows"]
            sql = theirs.format(**globs)
            api_ms, api_rows = median_ms(via_api, args.repeat)
            duck_ms, duck_rows = median_ms(lambda: con.execute(sql).fetchall(), args.repeat)
            a, d = normalize(api_rows), normalize(duck_rows)
            if "sketches" in name:
                # Sketch percentiles are within 1% of the exact ones.
                same = len(a) == len(d) and all(
                    x[:2] == y[:2] and abs(x[2] - y[2]) <= 0.01 * abs(y[2]) + 1 for x, y in zip(a, d))
                verdict = "yes (within 1%)" if same else "NO"
            else:
                verdict = "yes" if a == d else f"NO ({len(a)} vs {len(d)} rows)"
            ratios.append(duck_ms / api_ms)
            print(f"| {name} | {api_ms:.1f} | {duck_ms:.1f} | {duck_ms / api_ms:.2f} | {verdict} |", flush=True)
        print()
        print(f"API overhead (median SELECT 1 over HTTP, keep-alive): {overhead:.2f} ms")
        print(f"geometric mean of DuckDB / opslake: {statistics.geometric_mean(ratios):.2f}")
        server.terminate()
        server.wait()

        # Load: the shipped dashboard's panels, many clients at once, cache on.
        env["OPSLAKE_QUERY__CACHE_BYTES"] = str(256 << 20)
        server = start_serve(env, port)
        panels = [
            {"target": "latency", "payload": {"percentile": ["p50", "p95", "p99"]}},
            {"target": "throughput", "payload": {"group_by": "service"}},
            {"target": "latency", "payload": {"percentile": "p95", "group_by": "label:endpoint"}},
            {"target": "latency", "payload": {"percentile": "p95", "group_by": "version"}},
        ]
        body = lambda i: {"range": {"from": "2026-11-23T04:00:00.000Z", "to": "2026-11-23T10:00:00.000Z"},
                          "intervalMs": 60000, "maxDataPoints": 500, "targets": [panels[i % len(panels)]]}
        stop = time.perf_counter() + args.seconds
        lat, errors, lock = [], [], threading.Lock()

        def worker(i):
            c = Client(port)
            n = 0
            while time.perf_counter() < stop:
                t = time.perf_counter()
                try:
                    status, _ = c.post("/grafana/query", body(i + n))
                except Exception as e:  # noqa: BLE001
                    status = repr(e)
                    c = Client(port)
                ms = (time.perf_counter() - t) * 1000
                with lock:
                    lat.append(ms)
                    if status != 200:
                        errors.append(status)
                n += 1

        with concurrent.futures.ThreadPoolExecutor(max_workers=args.clients) as ex:
            list(ex.map(worker, range(args.clients)))
        lat.sort()
        q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
        print()
        print(f"load: {args.clients} concurrent clients, {args.seconds} s of Grafana dashboard requests, cache on")
        print(f"  requests {len(lat):,} ({len(lat) / args.seconds:,.0f}/s), errors {len(errors)}"
              + (f" ({sorted(set(map(str, errors)))[:5]})" if errors else ""))
        print(f"  latency p50 {q(0.50):.1f} ms, p90 {q(0.90):.1f} ms, p99 {q(0.99):.1f} ms, max {lat[-1]:.1f} ms")
    finally:
        if server:
            server.terminate()
            server.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
