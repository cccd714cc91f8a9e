#!/usr/bin/env python3
"""bench/detect: what detection reports on the quickstart's demo traffic, with and without
incidents, in one run.

For each density (the quickstart's history, one event every 2 s, and a denser load) and each
mode (`--no-incidents`: no error bursts, deploys that leave latency as it was; `incidents`: the
demo's 3-minute error burst every 2 hours per service and a 35% slower version every third
deploy), it starts a Tansu broker and `opslake run` on a fresh lake, produces the same seeded
history with `opslake produce --start ... --end ...`, waits for the processor to catch up, and
prints:

- detections per day: anomalies by metric and severity, regressions by kind;
- with incidents: every injected incident and whether it was found (an error-rate anomaly of
  the service within the burst, a `regression` of the service within 30 minutes of the slower
  version's first event), with the evidence when it was not.

Targets (issue 15): no critical anomaly and no regression without incidents; every incident
found where the traffic holds the evidence.

Usage: python3 bench/detect.py [--days 2] [--steps 2s,200ms] [--bin target/debug/opslake]
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
from datetime import datetime, timedelta, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ingest import free_port, start_tansu, wait_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVICES = ["checkout", "search", "catalog", "auth", "shipping"]  # the generator's order
BURST_CYCLE_MS = 7_200_000
BURST_MS = 180_000
DAY_MS = 86_400_000


def burst_starts(service_index, start_ms, end_ms):
    """The generator's error bursts of a service: (t + offset) mod 2 h < 3 min."""
    offset = (service_index * 1_733_000) % BURST_CYCLE_MS
    t = start_ms - (start_ms + offset) % BURST_CYCLE_MS
    out = []
    while t < end_ms:
        if t >= start_ms and t + BURST_MS <= end_ms:
            out.append(t)
        t += BURST_CYCLE_MS
    return out


def sql(port, query):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/sql", method="POST",
                                 data=json.dumps({"sql": query}).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)["rows"]


def wait_caught_up(port, end_ms, timeout=900):
    """Until the rollups reach the end of the history and the detections stop changing."""
    deadline = time.time() + timeout
    last, stable = None, 0
    while time.time() < deadline:
        try:
            newest = sql(port, "SELECT CAST(max(window_start) AS BIGINT) FROM metric_rollups_1m")[0][0] or 0
            found = sql(port, "SELECT (SELECT count(*) FROM anomalies) + (SELECT count(*) FROM regressions)")[0][0]
        except OSError:
            newest, found = 0, None
        print(f"\r  rollups up to {fmt(newest)}, {found} detections   ", end="", flush=True)
        if newest >= end_ms - 5 * 60_000 and found == last:
            stable += 1
            if stable >= 5:
                print()
                return
        else:
            stable = 0
        last = found
        time.sleep(2)
    raise SystemExit("the processor did not catch up")


def fmt(ms):
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M") if ms else "-"


def run(opslake, step, days, incidents, work):
    port, broker = start_tansu(work)
    wait_port(port)
    lake = os.path.join(work, f"lake-{step}-{incidents}")
    api = free_port()
    env = dict(os.environ, OPSLAKE_BROKERS=f"127.0.0.1:{port}", OPSLAKE_LAKE=lake,
               OPSLAKE_LISTEN=f"127.0.0.1:{api}", OPSLAKE_PROCESSOR__INTERVAL="2s",
               RUST_LOG=os.environ.get("RUST_LOG", "warn"))
    log = open(os.path.join(work, f"opslake-{step}-{incidents}.log"), "w")
    proc = subprocess.Popen([opslake, "run"], env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_port(api, timeout=60)
        end = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
        start = end - timedelta(days=days)
        start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
        cmd = [opslake, "produce", "--seed", "1", "--start", start.isoformat().replace("+00:00", "Z"),
               "--end", end.isoformat().replace("+00:00", "Z"), "--step", step, "--no-progress"]
        if not incidents:
            cmd.append("--no-incidents")
        t = time.time()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        print(f"  produced {days} days at one event every {step} in {time.time() - t:.0f}s", flush=True)
        wait_caught_up(api, end_ms)
        return report(api, start_ms, end_ms, days, incidents)
    finally:
        proc.terminate()
        proc.wait(30)
        broker.terminate()
        broker.wait(30)


def report(port, start_ms, end_ms, days, incidents):
    anomalies = sql(port, "SELECT metric, severity, count(*) FROM anomalies GROUP BY 1, 2 ORDER BY 1, 2")
    regressions = sql(port, "SELECT coalesce(kind, 'null'), count(*) FROM regressions GROUP BY 1 ORDER BY 1")
    critical = sum(r[2] for r in anomalies if r[1] == "critical")
    regression_rows = sum(r[1] for r in regressions if r[0] == "regression")
    for m, sev, n in anomalies:
        print(f"  anomalies {m:11} {sev:9} {n:5}  {n / days:6.1f}/day")
    for kind, n in regressions:
        print(f"  regressions {kind:20} {n:5}  {n / days:6.1f}/day")
    if not incidents:
        for row in sql(port, "SELECT service, name, labels['endpoint'], metric, CAST(change_at AS BIGINT), "
                             "round(change_pct, 1), kind, version_before, version_after FROM regressions ORDER BY 5"):
            print(f"    {row[0]} {row[1]} {row[2]} {row[3]} at {fmt(row[4])}: {row[5]:+}% {row[6]} "
                  f"({row[7]} -> {row[8]})")
    result = {"critical_per_day": critical / days, "regressions_per_day": regression_rows / days}
    if not incidents:
        return result
    found_bursts, total_bursts, missed = 0, 0, []
    rates = sql(port, "SELECT service, CAST(window_start AS BIGINT) FROM anomalies WHERE metric = 'error_rate'")
    for i, service in enumerate(SERVICES):
        for b in burst_starts(i, start_ms, end_ms):
            total_bursts += 1
            hit = any(s == service and b - 60_000 <= w <= b + BURST_MS + 60_000 for s, w in rates)
            if hit:
                found_bursts += 1
            else:
                ev = sql(port, f"SELECT coalesce(sum(count), 0), coalesce(sum(error_count), 0) FROM log_rollups_1m "
                               f"WHERE service = '{service}' AND window_start >= to_timestamp_millis({b}) "
                               f"AND window_start < to_timestamp_millis({b + BURST_MS})")[0]
                missed.append((service, b, ev))
    deploys = sql(port, "SELECT service, version, CAST(min(timestamp) AS BIGINT) FROM metrics "
                        "GROUP BY 1, 2 ORDER BY 1, 3")
    changes = sql(port, "SELECT service, CAST(change_at AS BIGINT), metric, round(change_pct) FROM regressions "
                        "WHERE kind = 'regression'")
    slow = [(s, v, t) for s, v, t in deploys if v and int(v.split(".")[1]) % 3 == 0 and v != "1.0.0"]
    found_slow = 0
    for s, v, t in slow:
        hit = [c for c in changes if c[0] == s and abs(c[1] - t) <= 30 * 60_000]
        found_slow += bool(hit)
        print(f"  slower version {s} {v} at {fmt(t)}: {'found ' + str(hit[0][2:]) if hit else 'MISSED'}")
    print(f"  error bursts found: {found_bursts}/{total_bursts}")
    for service, b, (n, k) in missed[:10]:
        print(f"    missed {service} at {fmt(b)}: {k} errors of {n} log events in the burst")
    if len(missed) > 10:
        print(f"    ... and {len(missed) - 10} more")
    print(f"  slower versions found: {found_slow}/{len(slow)}")
    result.update(bursts=(found_bursts, total_bursts), slow=(found_slow, len(slow)))
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=2)
    ap.add_argument("--steps", default="2s,200ms")
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "debug", "opslake"))
    ap.add_argument("--modes", default="no,yes", help="incidents: no, yes or both (no,yes)")
    ap.add_argument("--keep", action="store_true", help="keep the lakes (their paths are printed)")
    args = ap.parse_args()
    if not os.path.exists(args.bin):
        raise SystemExit(f"missing {args.bin}: cargo build --bin opslake")
    work = tempfile.mkdtemp(prefix="opslake-bench-detect-")
    summary = []
    try:
        for step in args.steps.split(","):
            for incidents in [m == "yes" for m in args.modes.split(",")]:
                print(f"== one event every {step}, {'with' if incidents else 'without'} incidents", flush=True)
                summary.append((step, incidents, run(args.bin, step, args.days, incidents, work)))
    finally:
        if args.keep:
            print(f"lakes kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print("step   incidents  critical anomalies/day  regressions/day  error bursts found  slower versions found")
    for step, incidents, r in summary:
        bursts = "{}/{}".format(*r["bursts"]) if "bursts" in r else "-"
        slow = "{}/{}".format(*r["slow"]) if "slow" in r else "-"
        print(f"{step:6} {'yes' if incidents else 'no':9}  {r['critical_per_day']:22.1f}  {r['regressions_per_day']:15.1f}"
              f"  {bursts:>18}  {slow:>21}")


if __name__ == "__main__":
    main()
