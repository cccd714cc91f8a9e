#!/usr/bin/env python3
"""bench/ingest: opslake ingest against a plain consumer and DuckDB, on the same data, in one run.

1. writes N pre-generated NDJSON metric events (default 2,000,000) to a file,
2. starts a Tansu broker (in memory) and produces the file to a topic with `opslake produce`,
3. measures, one after the other on this machine:
   - opslake ingest from the earliest offset until every row is durable in the lake,
   - a plain rdkafka consumer with the same librdkafka settings, reading and discarding,
   - DuckDB (pip) converting the NDJSON file to zstd Parquet with 2 threads,
4. prints events/s of each and the ratios, and opslake's peak memory.

Usage: python3 bench/ingest.py [--events N] [--partitions P]
Needs a release build (`cargo build --release --bin opslake -p opslake -p opslake-ingest --example plain_consumer`);
installs duckdb from PyPI when missing.
"""
import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(ROOT, "target", "release")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"broker did not listen on {port}")


def generate(path, n, seed=1):
    rnd = random.Random(seed)
    services = ["checkout", "search", "catalog", "auth", "shipping"]
    endpoints = ["/api/pay", "/api/cart", "/api/search", "/api/items", "/api/login"]
    t0 = 1795341600000
    with open(path, "w") as f:
        for i in range(n):
            s = rnd.randrange(5)
            f.write(json.dumps({
                "timestamp": t0 + i * 5,
                "service": services[s],
                "name": "http.server.duration",
                "value": round(rnd.lognormvariate(3.5, 0.5), 3),
                "unit": "ms",
                "kind": "sample",
                "host": f"{services[s]}-{rnd.randrange(1, 5)}",
                "version": "1.4.2",
                "labels": {"endpoint": endpoints[s], "method": "GET", "status": "200"},
            }, separators=(",", ":")))
            f.write("\n")


def lake_rows(lake, table="metrics"):
    """Rows committed to `table` per the lake's commit log (reads every entry)."""
    log = os.path.join(lake, "_opslake_log")
    if not os.path.isdir(log):
        return 0
    files = {}
    for name in sorted(os.listdir(log)):
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(log, name)) as f:
                e = json.load(f)
        except (OSError, ValueError):
            continue
        for r in e.get("remove", []):
            files.pop(r, None)
        for a in e.get("add", []):
            if a["table"] == table:
                files[a["path"]] = a["rows"]
    return sum(files.values())


def release_binaries():
    """The release builds of opslake and of the plain consumer the benches compare with."""
    opslake = os.path.join(REL, "opslake")
    plain = os.path.join(REL, "examples", "plain_consumer")
    for b in (opslake, plain):
        if not os.path.exists(b):
            raise SystemExit(f"missing {b}: cargo build --release --bin opslake -p opslake -p opslake-ingest --example plain_consumer")
    return opslake, plain


def start_tansu(work):
    """A Tansu broker in memory on a free port: (port, process)."""
    port = free_port()
    tansu = shutil.which("tansu") or os.path.expanduser("~/.cargo/bin/tansu")
    broker = subprocess.Popen([tansu, "broker", "--listener-url", f"tcp://127.0.0.1:{port}",
                               "--advertised-listener-url", f"tcp://127.0.0.1:{port}",
                               "--storage-engine", "memory://tansu/"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work)
    return port, broker


# opslake's default `ingest.session_timeout`.
SESSION_TIMEOUT_MS = 10_000


def consumed(port):
    """Messages opslake ingest has consumed so far, from its /metrics (0 before it answers)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as r:
            text = r.read().decode()
    except OSError:
        return 0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("opslake_ingest_messages_consumed_total"))


def peak_rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--partitions", type=int, default=4)
    args = ap.parse_args()
    opslake, plain = release_binaries()
    try:
        import duckdb  # noqa: F401
    except ImportError:
        subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "duckdb"])
    import duckdb

    steady = {}
    work = tempfile.mkdtemp(prefix="opslake-bench-")
    ndjson = os.path.join(work, "events.ndjson")
    print(f"generating {args.events} events ...", flush=True)
    generate(ndjson, args.events)
    size = os.path.getsize(ndjson)
    port, broker = start_tansu(work)
    results = {}
    try:
        wait_port(port)
        env = dict(os.environ, OPSLAKE_BROKERS=f"127.0.0.1:{port}", OPSLAKE_INGEST__PARTITIONS=str(args.partitions),
                   RUST_LOG="warn")
        print("producing to the broker ...", flush=True)
        subprocess.check_call([opslake, "produce", "--file", ndjson, "--topic", "metrics", "--no-progress"], env=env,
                              stdout=subprocess.DEVNULL)

        # opslake: from start until every row is durable in the lake.
        lake = os.path.join(work, "lake")
        listen = free_port()
        env_i = dict(env, OPSLAKE_LAKE=lake, OPSLAKE_INGEST__GROUP_ID="bench-opslake",
                     OPSLAKE_LISTEN=f"127.0.0.1:{listen}")
        t0 = time.time()
        proc = subprocess.Popen([opslake, "ingest"], env=env_i, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        peak = 0.0
        first = None
        while lake_rows(lake) < args.events:
            peak = max(peak, peak_rss_mib(proc.pid))
            if first is None and consumed(listen) > 0:
                first = time.time()
            if proc.poll() is not None:
                raise SystemExit("opslake ingest exited early")
            if time.time() - t0 > 900:
                raise SystemExit("opslake did not ingest everything within 15 minutes")
            time.sleep(0.02)
        done = time.time()
        peak = max(peak, peak_rss_mib(proc.pid))
        proc.terminate()
        proc.wait(30)
        results["opslake ingest"] = done - t0
        steady["opslake ingest"] = done - (first or t0)

        # The same librdkafka settings as opslake's defaults, group session timeout included
        # (on Tansu a group's first join takes about half of it).
        out = json.loads(subprocess.check_output([plain, f"127.0.0.1:{port}", "telemetry.metrics", str(args.events),
                                                  str(SESSION_TIMEOUT_MS)]))
        results["plain rdkafka consumer"] = out["seconds"]
        steady["plain rdkafka consumer"] = out["seconds_after_first_message"]

        con = duckdb.connect()
        con.execute("SET threads = 2")
        t0 = time.time()
        con.execute(f"COPY (SELECT * FROM read_json('{ndjson}', format='newline_delimited')) "
                    f"TO '{os.path.join(work, 'duck.parquet')}' (FORMAT parquet, COMPRESSION zstd)")
        results["duckdb ndjson->parquet"] = time.time() - t0
    finally:
        broker.kill()
        broker.wait()

    print()
    print(f"{args.events} metric events, {size / 1e6:.0f} MB of NDJSON, {args.partitions} partitions, {os.cpu_count()} cores")
    print(f"{'system':<26}{'seconds':>10}{'events/s':>14}")
    for name, secs in results.items():
        print(f"{name:<26}{secs:>10.2f}{args.events / secs:>14,.0f}")
    print()
    print("from the first message read (the consumer-group join excluded):")
    for name, secs in steady.items():
        print(f"{name:<26}{secs:>10.2f}{args.events / secs:>14,.0f}")
    o = results["opslake ingest"]
    print()
    print(f"opslake / plain consumer: {results['plain rdkafka consumer'] / o:.2f} (target >= 0.70); "
          f"from the first message: {steady['plain rdkafka consumer'] / steady['opslake ingest']:.2f}")
    print(f"opslake / duckdb:         {results['duckdb ndjson->parquet'] / o:.2f}x (target >= 1.5); "
          f"from the first message: {results['duckdb ndjson->parquet'] / steady['opslake ingest']:.2f}x")
    print(f"opslake peak memory:      {peak:.0f} MiB (target < 1024)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
