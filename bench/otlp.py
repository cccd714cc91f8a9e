#!/usr/bin/env python3
"""bench/otlp: data points per second ingested from OTLP protobuf, against the same points as
opslake JSON events and against a plain consumer of the OTLP topic, in one run.

1. starts a Tansu broker (in memory) and produces the same synthetic metric points twice with
   `opslake produce` (same seed and simulated start, so point for point the same): as OTLP
   protobuf requests (`--otlp proto`, one point per synthetic event, BATCH points per message)
   and as opslake JSON arrays of BATCH events;
2. measures, one after the other: opslake ingest of the OTLP topic until every point is durable
   in the lake; opslake ingest of the JSON topic likewise (another lake); a plain rdkafka
   consumer reading the OTLP topic and discarding it;
3. prints points/s of each and the ratios.

Usage: python3 bench/otlp.py [--messages M] [--batch B]
Needs: cargo build --release --bin opslake -p opslake -p opslake-ingest --example plain_consumer
(BENCH_PROFILE=debug uses target/debug instead).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ingest import SESSION_TIMEOUT_MS, consumed, free_port, lake_rows, peak_rss_mib, start_tansu, wait_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROFILE = os.environ.get("BENCH_PROFILE", "release")
BIN = os.path.join(ROOT, "target", PROFILE)
START = "2026-11-30T00:00:00Z"


def topics_env(prefix):
    return {f"OPSLAKE_INGEST__TOPICS__{k}": f"{prefix}.{v}" for k, v in [
        ("METRICS", "metrics"), ("LOGS", "logs"), ("BILLING", "billing"),
        ("OTLP_METRICS", "otlp_metrics"), ("OTLP_LOGS", "otlp_logs"), ("DEAD_LETTER", "dead-letter")]}


def ingest(opslake, env, lake, points):
    """Seconds from start until `points` rows are durable, from the first message, peak MiB."""
    listen = free_port()
    env = dict(env, OPSLAKE_LAKE=lake, OPSLAKE_LISTEN=f"127.0.0.1:{listen}")
    t0 = time.time()
    proc = subprocess.Popen([opslake, "ingest"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first, peak = None, 0.0
    try:
        while lake_rows(lake) < points:
            peak = max(peak, peak_rss_mib(proc.pid))
            if first is None and consumed(listen) > 0:
                first = time.time()
            if proc.poll() is not None:
                raise SystemExit("opslake ingest exited early")
            if time.time() - t0 > 900:
                raise SystemExit("opslake did not ingest everything within 15 minutes")
            time.sleep(0.02)
        done = time.time()
    finally:
        proc.terminate()
        proc.wait(30)
    return done - t0, done - (first or t0), peak


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=50)
    args = ap.parse_args()
    opslake = os.path.join(BIN, "opslake")
    plain = os.path.join(BIN, "examples", "plain_consumer")
    for b in (opslake, plain):
        if not os.path.exists(b):
            raise SystemExit(f"missing {b}: cargo build --{PROFILE} --bin opslake -p opslake -p opslake-ingest --example plain_consumer")
    points = args.messages * args.batch
    work = tempfile.mkdtemp(prefix="opslake-bench-otlp-")
    port, broker = start_tansu(work)
    results, steady = {}, {}
    try:
        wait_port(port)
        base = dict(os.environ, OPSLAKE_BROKERS=f"127.0.0.1:{port}", OPSLAKE_INGEST__PARTITIONS="4", RUST_LOG="warn")
        produce = ["produce", "--only", "metrics", "--count", str(args.messages), "--batch", str(args.batch),
                   "--start", START, "--step", "1ms", "--no-progress"]
        print(f"producing {points} points as OTLP protobuf and as JSON ...", flush=True)
        otlp_env = dict(base, **topics_env("o"), OPSLAKE_INGEST__GROUP_ID="bench-otlp")
        json_env = dict(base, **topics_env("j"), OPSLAKE_INGEST__GROUP_ID="bench-json")
        subprocess.check_call([opslake, *produce, "--otlp", "proto"], env=otlp_env, stdout=subprocess.DEVNULL)
        subprocess.check_call([opslake, *produce], env=json_env, stdout=subprocess.DEVNULL)

        total, after_first, peak_otlp = ingest(opslake, otlp_env, os.path.join(work, "lake-otlp"), points)
        results["opslake, OTLP protobuf"], steady["opslake, OTLP protobuf"] = total, after_first
        total, after_first, peak_json = ingest(opslake, json_env, os.path.join(work, "lake-json"), points)
        results["opslake, JSON events"], steady["opslake, JSON events"] = total, after_first
        out = json.loads(subprocess.check_output([plain, f"127.0.0.1:{port}", "o.otlp_metrics", str(args.messages),
                                                  str(SESSION_TIMEOUT_MS)]))
        results["plain consumer, OTLP"] = out["seconds"]
        steady["plain consumer, OTLP"] = out["seconds_after_first_message"]
        otlp_bytes = out["bytes"]
    finally:
        broker.kill()
        broker.wait()

    print()
    print(f"{points} metric points in {args.messages} messages of {args.batch} ({otlp_bytes / 1e6:.1f} MB of OTLP "
          f"protobuf), 4 partitions, {os.cpu_count()} cores, {PROFILE} build")
    print(f"{'system':<26}{'seconds':>10}{'points/s':>14}{'from 1st msg':>14}{'points/s':>14}")
    for name in results:
        print(f"{name:<26}{results[name]:>10.2f}{points / results[name]:>14,.0f}"
              f"{steady[name]:>14.2f}{points / steady[name]:>14,.0f}")
    o, j, p = (steady[k] for k in results)
    print()
    print(f"OTLP / JSON ingest:      {j / o:.2f} (points/s of OTLP protobuf over JSON events, from the first message)")
    print(f"OTLP / plain consumer:   {p / o:.2f}")
    print(f"peak memory: OTLP {peak_otlp:.0f} MiB, JSON {peak_json:.0f} MiB")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
