#!/usr/bin/env python3
"""bench/protocols: the same results of 1, 10,000 and 1,000,000 rows fetched through HTTP JSON,
HTTP Arrow, PostgreSQL (psycopg, text and binary) and Flight SQL (ADBC), in one run against one
`opslake serve`; time (median) and bytes on the wire of each, and the ratios.

1. writes a lake with `bench_lake` (N metric events over 48 hours), unless --lake names one,
2. starts `opslake serve` with the PostgreSQL and Flight SQL listeners, result cache off (every
   fetch runs the query), max_rows 2,000,000,
3. for each size, runs `SELECT timestamp, service, name, value FROM metrics LIMIT n` through each
   client, decoding the whole answer into the client's own values (Python objects for JSON and
   PostgreSQL, an Arrow table for Arrow and Flight SQL), and checks all answer n rows,
4. bytes on the wire: the loopback interface's received bytes over the fetch (/proc/net/dev).

Usage: python3 bench/protocols.py [--events N] [--lake DIR] [--repeat K]
Needs: cargo build --release --bin opslake --example bench_lake (BENCH_PROFILE=debug for a dev
build); pip: psycopg[binary], adbc-driver-flightsql, pyarrow (installed when missing).
"""
import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(ROOT, "target", os.environ.get("BENCH_PROFILE", "release"))
SIZES = [1, 10_000, 1_000_000]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def loopback_bytes():
    with open("/proc/net/dev") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name.strip() == "lo":
                return int(rest.split()[0])
    return 0


def measure(fetch, repeat):
    """Median time (ms) and median bytes of `repeat` fetches; the last answer's row count."""
    times, sizes, rows = [], [], None
    for _ in range(repeat):
        before = loopback_bytes()
        t = time.perf_counter()
        rows = fetch()
        times.append((time.perf_counter() - t) * 1000)
        sizes.append(loopback_bytes() - before)
    return statistics.median(times), statistics.median(sizes), rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--lake")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    try:
        import adbc_driver_flightsql.dbapi as flight_sql
        import psycopg
        import pyarrow.ipc
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "psycopg[binary]",
                        "adbc-driver-flightsql", "adbc-driver-manager", "pyarrow"], check=True)
        import adbc_driver_flightsql.dbapi as flight_sql
        import psycopg
        import pyarrow.ipc
    work = tempfile.mkdtemp(prefix="opslake-bench-protocols-")
    lake = args.lake or os.path.join(work, "lake")
    server = None
    try:
        if not args.lake:
            print(f"writing {args.events:,} events to {lake} ...", flush=True)
            subprocess.run([os.path.join(REL, "examples", "bench_lake"), lake, str(args.events), "1", "48", "0"],
                           check=True, stderr=subprocess.DEVNULL)
        http_port, pg_port, flight_port = free_port(), free_port(), free_port()
        env = dict(os.environ, OPSLAKE_LAKE=lake, OPSLAKE_LISTEN=f"127.0.0.1:{http_port}",
                   OPSLAKE_PG_LISTEN=f"127.0.0.1:{pg_port}", OPSLAKE_FLIGHT_LISTEN=f"127.0.0.1:{flight_port}",
                   OPSLAKE_QUERY__CACHE_BYTES="0", OPSLAKE_QUERY__MAX_ROWS="2000000",
                   OPSLAKE_QUERY__MAX_BODY_BYTES="1048576", RUST_LOG="warn")
        server = subprocess.Popen([os.path.join(REL, "opslake"), "serve"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", http_port), 1).close()
                socket.create_connection(("127.0.0.1", pg_port), 1).close()
                socket.create_connection(("127.0.0.1", flight_port), 1).close()
                break
            except OSError:
                if time.time() > deadline:
                    sys.exit("opslake serve did not start")
                time.sleep(0.05)

        web = http.client.HTTPConnection("127.0.0.1", http_port, timeout=300)

        def http_fetch(sql, accept):
            web.request("POST", "/api/v1/sql", body=json.dumps({"sql": sql}),
                        headers={"content-type": "application/json", "accept": accept})
            r = web.getresponse()
            body = r.read()
            assert r.status == 200, body[:200]
            return body

        def http_json(sql):
            return len(json.loads(http_fetch(sql, "application/json"))["rows"])

        def http_arrow(sql):
            return pyarrow.ipc.open_stream(http_fetch(sql, "application/vnd.apache.arrow.stream")).read_all().num_rows

        pg = psycopg.connect(host="127.0.0.1", port=pg_port, user="bench", dbname="opslake", autocommit=True)

        def postgres(sql, binary=False):
            with pg.cursor(binary=binary) as cur:
                cur.execute(sql)
                return len(cur.fetchall())

        flight = flight_sql.connect(f"grpc://127.0.0.1:{flight_port}")

        def flight_fetch(sql):
            with flight.cursor() as cur:
                cur.execute(sql)
                return cur.fetch_arrow_table().num_rows

        clients = [
            ("HTTP JSON", http_json),
            ("HTTP Arrow", http_arrow),
            ("PostgreSQL (text)", postgres),
            ("PostgreSQL (binary)", lambda s: postgres(s, True)),
            ("Flight SQL (ADBC)", flight_fetch),
        ]
        print()
        print("| rows | client | median (ms) | bytes on the wire | time / HTTP JSON |")
        print("|---:|---|---:|---:|---:|")
        results = {}
        for n in SIZES:
            sql = f"SELECT timestamp, service, name, value FROM metrics LIMIT {n}"
            repeat = args.repeat * 4 if n == 1 else args.repeat
            for name, fetch in clients:
                fetch(sql)  # warm: files opened, connections up
                ms, size, rows = measure(lambda: fetch(sql), repeat)
                assert rows == n, f"{name} answered {rows} rows, not {n}"
                results[(n, name)] = ms
                base = results[(n, "HTTP JSON")]
                print(f"| {n:,} | {name} | {ms:.1f} | {size:,} | {ms / base:.2f} |", flush=True)
        print()
        speedup = results[(1_000_000, "HTTP JSON")] / results[(1_000_000, "Flight SQL (ADBC)")]
        small = results[(1, "PostgreSQL (text)")] / results[(1, "HTTP JSON")]
        print(f"Flight SQL vs HTTP JSON, 1,000,000 rows: {speedup:.1f}x faster (target: at least 5x)")
        print(f"PostgreSQL vs HTTP JSON, 1 row: {small:.2f} of its time (target: at most 1.5)")
        pg.close()
        flight.close()
    finally:
        if server:
            server.terminate()
            server.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
