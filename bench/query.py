#!/usr/bin/env python3
"""bench/query: ad hoc and dashboard SQL through opslake's HTTP API against DuckDB, in one run,
result cache off; then a load run of concurrent dashboard requests.

1. writes a lake with `bench_lake` (N metric events over HOURS hours, 90 days of a 200-resource
   bill) and compacts it as `opslake run` does once hours go quiet (the cost of both printed:
   events/s, bytes/event), then folds it with `opslake process --once` (rollups, costs,
   opportunities),
2. starts `opslake serve` (release) on loopback with the result cache off,
3. runs each query REPEAT times (after one warm-up) through POST /api/v1/sql, through DuckDB
   (pip, 2 threads) on the lake's own Parquet files (`read_parquet` with hive partitioning),
   and through DuckDB on one Parquet file per table written by DuckDB from the same rows (in
   time order); checks the three answers agree; prints median and p95 of each, and the
   geometric mean of opslake's time over DuckDB's (target: at most 1.0),
4. measures the API's own overhead (median of `SELECT 1` over HTTP),
5. load (unless --clients 0): CLIENTS concurrent clients send Grafana dashboard requests (the
   shipped dashboard's latency and throughput panels) for SECONDS seconds, cache on.

Usage: python3 bench/query.py [--events N] [--hours H] [--repeat K] [--clients C] [--seconds S]
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


def ts(engine, text):
    """A UTC time literal (`2026-11-23T04:00`) in `engine`'s SQL."""
    return f"TIMESTAMP '{text}:00Z'" if engine == "opslake" else f"TIMESTAMPTZ '{text.replace('T', ' ')}:00+00'"


def between(engine, column, lo, hi):
    c = column if engine == "opslake" else f'"{column}"'
    return f"{c} >= {ts(engine, lo)} AND {c} < {ts(engine, hi)}"


# Windows inside the 48 hours after bench_lake's first event (2026-11-22T10:00Z).
SIX = ("2026-11-23T04:00", "2026-11-23T10:00")
TWO = ("2026-11-23T06:00", "2026-11-23T08:00")
DAY = ("2026-11-22T12:00", "2026-11-23T12:00")


def queries(e):
    """(name, SQL) for engine `e` ("opslake" or "duckdb"); DuckDB's tables are `{m}` etc."""
    m, r1m, cd, co = ("metrics", "metric_rollups_1m", "cost_daily", "cost_opportunities") if e == "opslake" \
        else ("{m}", "{r1m}", "{cd}", "{co}")
    t = "timestamp" if e == "opslake" else '"timestamp"'
    minute = f"date_trunc('minute', {t})"
    five = (f"date_bin(INTERVAL '5 minutes', window_start, TIMESTAMP '1970-01-01T00:00:00Z')" if e == "opslake"
            else f"time_bucket(INTERVAL 5 minute, {t})")
    p95 = ("round(quantile_merge(sketch, 0.95), 0)" if e == "opslake" else "round(quantile_cont(value, 0.95), 0)")
    return [
        ("filter: count of one service",
         f"SELECT count(*) AS n FROM {m} WHERE service = 'service-03'"),
        ("group: count and mean by service",
         f"SELECT service, count(*) AS n, round(avg(value), 6) AS mean FROM {m} GROUP BY service ORDER BY service"),
        ("series: max by minute of one service, 6 hours",
         f"SELECT {minute} AS t, max(value) AS mx FROM {m} WHERE service = 'service-03' "
         f"AND {between(e, 'timestamp', *SIX)} GROUP BY 1 ORDER BY 1"),
        ("top-N: 10 busiest (service, endpoint)",
         f"SELECT service, labels['endpoint'] AS endpoint, count(*) AS n FROM {m} "
         f"GROUP BY 1, 2 ORDER BY n DESC, 1, 2 LIMIT 10"),
        ("range: min and max by service, 2 hours",
         f"SELECT service, min(value) AS lo, max(value) AS hi FROM {m} WHERE {between(e, 'timestamp', *TWO)} "
         f"GROUP BY service ORDER BY service"),
        ("label filter: one endpoint of one service by version, 6 hours",
         f"SELECT version, count(*) AS n, round(avg(value), 6) AS mean FROM {m} WHERE service = 'service-07' "
         f"AND labels['endpoint'] = '/api/pay' AND {between(e, 'timestamp', *SIX)} GROUP BY version ORDER BY version"),
        ("range scan: a day by hour and host",
         f"SELECT date_trunc('hour', {t}) AS h, host, count(*) AS n, round(sum(value), 3) AS total, max(value) AS mx "
         f"FROM {m} WHERE {between(e, 'timestamp', *DAY)} GROUP BY 1, 2 ORDER BY 1, 2"),
        ("percentiles: p95 per service per 5 minutes, 6 hours (opslake: rollup sketches; DuckDB: exact from raw)",
         (f"SELECT {five} AS t, service, {p95} AS p95 FROM {r1m} WHERE {between(e, 'window_start', *SIX)} "
          f"GROUP BY 1, 2 ORDER BY 1, 2") if e == "opslake" else
         (f"SELECT {five} AS t, service, {p95} AS p95 FROM {m} WHERE {between(e, 'timestamp', *SIX)} "
          f"GROUP BY 1, 2 ORDER BY 1, 2")),
        ("percentiles: worst 1-minute p99 per service per hour (the rollup table)",
         f"SELECT date_trunc('hour', window_start) AS h, service, max(p99) AS worst FROM {r1m} "
         f"GROUP BY 1, 2 ORDER BY 1, 2"),
        ("join: 30 days of cost with savings opportunities, per provider",
         f"SELECT c.provider, round(sum(c.cost), 2) AS cost, count(DISTINCT o.resource_id) AS flagged "
         f"FROM {cd} c LEFT JOIN {co} o ON c.resource_id = o.resource_id "
         f"WHERE c.date >= DATE '2026-10-23' GROUP BY 1 ORDER BY 1"),
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


def timed(f, repeat):
    """Median and p95 (nearest rank) of `repeat` runs of `f` after one warm-up, and its answer."""
    out = f()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = f()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.95 * len(times) + 0.5) - 1)], out


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


def same(name, a, b):
    """Whether two normalized answers agree (sketch percentiles: within 1% of exact ones)."""
    if "sketches" in name:
        return len(a) == len(b) and all(
            x[:2] == y[:2] and abs(x[2] - y[2]) <= 0.01 * abs(y[2]) + 1 for x, y in zip(a, b))
    return a == b


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--hours", type=int, default=48)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--clients", type=int, default=0)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--no-compact", action="store_true", help="query the lake as ingest leaves it")
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
        print(f"writing {args.events:,} events over {args.hours} hours and 90 days of billing to {lake} ...",
              flush=True)
        bench_lake = os.path.join(REL, "examples", "bench_lake")
        out = subprocess.run([bench_lake, lake, str(args.events), "1", str(args.hours), "90"], check=True,
                             stderr=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True).stdout
        print(out.strip(), flush=True)
        t = time.perf_counter()
        subprocess.run([os.path.join(REL, "opslake"), "process", "--once", "--lake", lake], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(f"rollups and costs folded in {time.perf_counter() - t:.1f} s", flush=True)
        if not args.no_compact:
            # Every table, raw and derived, as `opslake run` leaves hours that have gone quiet.
            out = subprocess.run([bench_lake, lake, "0", "1", "1", "0", "compact"], check=True,
                                 stderr=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True).stdout
            print(out.strip(), flush=True)

        port = free_port()
        env = dict(os.environ, OPSLAKE_LAKE=lake, OPSLAKE_LISTEN=f"127.0.0.1:{port}",
                   OPSLAKE_QUERY__CACHE_BYTES="0", OPSLAKE_QUERY__MAX_ROWS="1000000", RUST_LOG="warn")
        server = start_serve(env, port)
        api = Client(port)

        con = duckdb.connect()
        con.execute("SET threads = 2")
        con.execute("SET TimeZone = 'UTC'")
        hive = lambda table, depth: (f"read_parquet('{os.path.join(lake, table, *(['*'] * depth), '*.parquet')}'"
                                     + (", hive_partitioning = true)" if depth else ")"))
        on_lake = {"m": hive("metrics", 2), "r1m": hive("metric_rollups_1m", 2),
                   "cd": hive("cost_daily", 0), "co": hive("cost_opportunities", 0)}
        t = time.perf_counter()
        one = {}
        for k, src in on_lake.items():
            path = os.path.join(work, f"one-{k}.parquet")
            order = {"m": ' ORDER BY "timestamp"', "r1m": " ORDER BY window_start"}.get(k, "")
            con.execute(f"COPY (SELECT * FROM {src}{order}) TO '{path}' (FORMAT parquet)")
            one[k] = f"read_parquet('{path}')"
        print(f"DuckDB wrote one Parquet file per table in {time.perf_counter() - t:.1f} s "
              f"(metrics: {os.path.getsize(os.path.join(work, 'one-m.parquet')) / args.events:.1f} bytes/event)")

        overhead = timed(lambda: api.post("/api/v1/sql", {"sql": "SELECT 1"}), 200)[0]

        print()
        print("| query | opslake median / p95 (ms) | DuckDB, lake files | DuckDB, one file "
              "| opslake ÷ DuckDB (lake, one) | same answer |")
        print("|---|---:|---:|---:|---:|---|")
        ratios_lake, ratios_one = [], []
        for (name, ours), (_, theirs) in zip(queries("opslake"), queries("duckdb")):
            def via_api():
                status, body = api.post("/api/v1/sql", {"sql": ours})
                if status != 200:
                    raise RuntimeError(f"{name}: {status} {body[:300]}")
                return json.loads(body)["rows"]
            api_ms, api_p95, api_rows = timed(via_api, args.repeat)
            lake_sql, one_sql = theirs.format(**on_lake), theirs.format(**one)
            lake_ms, lake_p95, lake_rows = timed(lambda: con.execute(lake_sql).fetchall(), args.repeat)
            one_ms, one_p95, one_rows = timed(lambda: con.execute(one_sql).fetchall(), args.repeat)
            a, b, c = normalize(api_rows), normalize(lake_rows), normalize(one_rows)
            verdict = ("yes" if "sketches" not in name else "yes (within 1%)") \
                if same(name, a, b) and same(name, a, c) else f"NO ({len(a)}, {len(b)}, {len(c)} rows)"
            ratios_lake.append(api_ms / lake_ms)
            ratios_one.append(api_ms / one_ms)
            print(f"| {name} | {api_ms:.1f} / {api_p95:.1f} | {lake_ms:.1f} / {lake_p95:.1f} "
                  f"| {one_ms:.1f} / {one_p95:.1f} | {api_ms / lake_ms:.2f}, {api_ms / one_ms:.2f} | {verdict} |",
                  flush=True)
        print()
        print(f"API overhead (median SELECT 1 over HTTP, keep-alive): {overhead:.2f} ms")
        print(f"geometric mean of opslake's time over DuckDB's: {statistics.geometric_mean(ratios_lake):.2f} "
              f"(DuckDB on the lake's files), {statistics.geometric_mean(ratios_one):.2f} (DuckDB on one file)")
        server.terminate()
        server.wait()
        if args.clients == 0:
            return

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
