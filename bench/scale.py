#!/usr/bin/env python3
"""bench/scale: opslake ingest with 1 and with 2 processes, the lake on local disk and on an S3
server, on the same data in one run, side by side (and a plain consumer as the ceiling).

1. writes N NDJSON metric events (default 1,000,000; bench/ingest.py's generator) and produces
   them once to a Tansu broker (in memory) with P partitions,
2. for each of: 1 ingest / local disk, 2 ingest / local disk, 1 ingest / S3, 2 ingest / S3 —
   starts that many `opslake ingest` processes in a fresh consumer group over a fresh lake and
   times from start until every row is committed in the lake (read from the lake's commit log;
   on S3 through the S3 API),
3. runs a plain rdkafka consumer over the same topic (reads and discards),
4. prints events/s, bytes/event in the lake, and the ratios.

The S3 server is moto's (`pip install 'moto[server]'`, a Python process on this machine): it
measures the protocol's round trips and opslake's object-store path, not a real S3's bandwidth.

Usage: python3 bench/scale.py [--events N] [--partitions P]
Needs a release build (`cargo build --release --bin opslake -p opslake -p opslake-ingest --example plain_consumer`).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ingest import free_port, generate, lake_rows, release_binaries, start_tansu, wait_port  # noqa: E402

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_REGION": "us-east-1",
    "AWS_ALLOW_HTTP": "true",
}


class S3Lake:
    """Reads the commit log of a lake in a bucket of the S3 server, incrementally."""

    def __init__(self, endpoint, bucket, prefix):
        import boto3  # installed with moto[server]

        self.s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test",
                               aws_secret_access_key="test", region_name="us-east-1")
        self.bucket, self.prefix = bucket, prefix
        self.seen, self.files = set(), {}

    def rows(self, table="metrics"):
        log = f"{self.prefix}/_opslake_log/"
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=log)
        keys = sorted(o["Key"] for p in pages for o in p.get("Contents", []) if o["Key"].endswith(".json"))
        for k in keys:
            if k in self.seen:
                continue
            try:
                e = json.loads(self.s3.get_object(Bucket=self.bucket, Key=k)["Body"].read())
            except Exception:  # noqa: BLE001 - a checkpoint or an entry being written
                continue
            self.seen.add(k)
            for r in e.get("remove", []):
                self.files.pop(r, None)
            for a in e.get("add", []):
                if a["table"] == table:
                    self.files[a["path"]] = (a["rows"], a.get("bytes", 0))
        return sum(r for r, _ in self.files.values())

    def bytes(self):
        return sum(b for _, b in self.files.values())


def local_bytes(lake, table="metrics"):
    total = 0
    for root, _, files in os.walk(os.path.join(lake, table)):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files if f.endswith(".parquet"))
    return total


def run_ingest(opslake, env, instances, events, rows, logs, timeout=900):
    """Starts `instances` ingest processes; seconds until `rows()` reaches `events`."""
    t0 = time.time()
    procs = []
    for i in range(instances):
        err = open(f"{logs}-{i}.log", "w") if logs else subprocess.DEVNULL
        procs.append(subprocess.Popen([opslake, "ingest", "--listen", "127.0.0.1:0"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=err))
    try:
        while rows() < events:
            for p in procs:
                if p.poll() is not None:
                    raise SystemExit("opslake ingest exited early")
            if time.time() - t0 > timeout:
                raise SystemExit(f"{instances} ingest did not finish within {timeout} s")
            time.sleep(0.1)
        return time.time() - t0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(60)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--only", help="one run, e.g. 2-s3 or 1-local")
    ap.add_argument("--logs", help="keep each opslake's log under this directory")
    args = ap.parse_args()
    if args.logs:
        os.makedirs(args.logs, exist_ok=True)
    opslake, plain = release_binaries()
    try:
        import moto.server  # noqa: F401
    except ImportError:
        subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "moto[server]"])

    work = tempfile.mkdtemp(prefix="opslake-scale-")
    ndjson = os.path.join(work, "events.ndjson")
    print(f"generating {args.events} events ...", flush=True)
    generate(ndjson, args.events)
    kport, broker = start_tansu(work)
    sport = free_port()
    s3 = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(sport)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{sport}"
    results = []
    try:
        wait_port(kport)
        wait_port(sport)
        env = dict(os.environ, OPSLAKE_BROKERS=f"127.0.0.1:{kport}",
                   OPSLAKE_INGEST__PARTITIONS=str(args.partitions), RUST_LOG=os.environ.get("RUST_LOG", "warn"),
                   OPSLAKE_INGEST__SESSION_TIMEOUT="6s")
        print("producing to the broker ...", flush=True)
        subprocess.check_call([opslake, "produce", "--file", ndjson, "--topic", "metrics", "--no-progress"],
                              env=env, stdout=subprocess.DEVNULL)
        for store in ("local disk", "S3 (moto)"):
            for n in (1, 2):
                run = f"{n}-{store.split()[0].lower()}"
                if args.only and args.only != run:
                    continue
                env_i = dict(env, OPSLAKE_INGEST__GROUP_ID=f"bench-{run}")
                if store == "local disk":
                    lake = os.path.join(work, f"lake-{run}")
                    env_i["OPSLAKE_LAKE"] = lake
                    rows = lambda lake=lake: lake_rows(lake)  # noqa: E731
                    size = lambda lake=lake: local_bytes(lake)  # noqa: E731
                else:
                    bucket = f"bench-{run}"
                    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{bucket}", method="PUT")).read()
                    env_i.update(S3_ENV, AWS_ENDPOINT=endpoint, OPSLAKE_LAKE=f"s3://{bucket}/lake")
                    reader = S3Lake(endpoint, bucket, "lake")
                    rows, size = reader.rows, reader.bytes
                print(f"{n} ingest, {store} ...", flush=True)
                logs = os.path.join(args.logs, run) if args.logs else None
                secs = run_ingest(opslake, env_i, n, args.events, rows, logs)
                if rows() != args.events:
                    raise SystemExit(f"{n} ingest, {store}: the lake holds {rows()} rows, {args.events} were sent")
                results.append((n, store, secs, size()))
        out = subprocess.check_output([plain, f"127.0.0.1:{kport}", "telemetry.metrics", str(args.events), "6000"])
        plain_secs = json.loads(out)["seconds"]
    finally:
        broker.kill()
        s3.kill()
        broker.wait()
        s3.wait()

    cores = os.cpu_count()
    print()
    print(f"{args.events} metric events, {args.partitions} partitions, {cores} cores "
          f"(broker, S3 server and opslake share them)")
    print(f"{'ingest processes':<18}{'lake':<12}{'seconds':>9}{'events/s':>12}{'per core':>11}{'bytes/event':>13}")
    for n, store, secs, size in results:
        eps = args.events / secs
        print(f"{n:<18}{store:<12}{secs:>9.2f}{eps:>12,.0f}{eps / cores:>11,.0f}{size / args.events:>13.1f}")
    print(f"{'plain consumer':<30}{plain_secs:>9.2f}{args.events / plain_secs:>12,.0f}")
    by = {(n, s): secs for n, s, secs, _ in results}
    if args.only:
        return
    print()
    for store in ("local disk", "S3 (moto)"):
        print(f"{store:<11} 2 processes / 1 process: {by[(1, store)] / by[(2, store)]:.2f}x")
    for n in (1, 2):
        print(f"{n} process{'es' if n > 1 else '  '} S3 / local disk:       {by[(n, 'local disk')] / by[(n, 'S3 (moto)')]:.2f}x")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
