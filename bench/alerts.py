#!/usr/bin/env python3
"""bench/alerts: do the built-in alerts tell people about real incidents, only about them, and
how soon?

One run: a Tansu broker and `opslake run` with default intervals (processor 10 s, alerts 15 s)
and a webhook receiver played by this script, which records when each notification arrives.

1. History, so that the detectors have a baseline: 35 days of billing (`opslake produce --only
   billing --step 1h`), then `--days` of quiet traffic (`--no-incidents`, one event every
   `--step`). opslake is restarted once it has caught up, with a monthly budget of 1.3 times
   the month-end forecast it then makes.
2. Live traffic for `--live` (`opslake produce --no-incidents --rate`, now-stamped), with
   incidents injected at known times (as NDJSON through `opslake produce --file`):
   - a latency spike: checkout's /api/pay ten times slower for 3 minutes;
   - an error burst: search logs 30% errors for 3 minutes;
   - a slow deploy: catalog's /api/items in a new version 60% slower, until the end;
   - a cost jump: yesterday's bill gains a resource costing half a month of the fleet.
3. It prints, for the built-in alerts: each incident and whether it was alerted (recall), the
   notifications no incident explains (target: under 5% of notifications), and the time from
   an incident's first event to its first notification (target: under 30 s).

Usage: python3 bench/alerts.py [--live 30m] [--days 2] [--step 200ms] [--rate 5]
       [--bin target/debug/opslake]
"""
import argparse
import http.server
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime, timedelta, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ingest import free_port, start_tansu, wait_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIN = 60_000


def now_ms():
    return int(time.time() * 1000)


def iso(dt):
    return dt.isoformat().replace("+00:00", "Z")


def fmt(ms):
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%H:%M:%S")


def parse_duration(s):
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for u in sorted(units, key=len, reverse=True):
        if s.endswith(u):
            return float(s[: -len(u)]) * units[u]
    return float(s)


class Receiver:
    """A webhook receiver (Alertmanager's webhook format) that notes when each alert arrives."""

    def __init__(self):
        self.got = []  # (received ms, status, labels, annotations)
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                for a in body.get("alerts", []):
                    receiver.got.append((now_ms(), a["status"], a["labels"], a["annotations"]))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class Opslake:
    def __init__(self, binary, work, broker_port, receiver_url, budget=None):
        self.binary, self.work = binary, work
        self.api = free_port()
        config = os.path.join(work, "opslake.toml")
        with open(config, "w") as f:
            f.write(f'[[alerts.receivers]]\nname = "bench"\nkind = "webhook"\nurl = "{receiver_url}"\n')
            if budget:
                f.write(f'[[alerts.budgets]]\nscope = "total"\nmonthly = {budget:.2f}\n')
        self.env = dict(os.environ, OPSLAKE_BROKERS=f"127.0.0.1:{broker_port}",
                        OPSLAKE_LAKE=os.path.join(work, "lake"), OPSLAKE_LISTEN=f"127.0.0.1:{self.api}",
                        OPSLAKE_CONFIG=config, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
        self.log = open(os.path.join(work, "opslake.log"), "a")
        self.proc = subprocess.Popen([binary, "run"], env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=self.log)
        wait_port(self.api, timeout=60)

    def sql(self, query):
        req = urllib.request.Request(f"http://127.0.0.1:{self.api}/api/v1/sql", method="POST",
                                     data=json.dumps({"sql": query}).encode(),
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as r:
            return json.load(r)["rows"]

    def produce(self, args, wait=True):
        cmd = [self.binary, "produce", "--no-progress"] + args
        if wait:
            subprocess.run(cmd, env=self.env, check=True, stdout=subprocess.DEVNULL)
            return None
        return subprocess.Popen(cmd, env=self.env, stdout=subprocess.DEVNULL)

    def send(self, topic, events):
        path = os.path.join(self.work, f"inject-{topic}.ndjson")
        with open(path, "w") as f:
            f.write(json.dumps(events) + "\n")
        self.produce(["--file", path, "--topic", topic])

    def stop(self):
        self.proc.terminate()
        self.proc.wait(60)


def wait_caught_up(o, end_ms, timeout=1800):
    deadline = time.time() + timeout
    last, stable = None, 0
    while time.time() < deadline:
        try:
            newest = o.sql("SELECT CAST(max(window_start) AS BIGINT) FROM metric_rollups_1m")[0][0] or 0
            found = o.sql("SELECT (SELECT count(*) FROM anomalies) + (SELECT count(*) FROM regressions) "
                          "+ (SELECT count(*) FROM cost_forecasts)")[0][0]
        except OSError:
            newest, found = 0, None
        print(f"\r  rollups up to {fmt(newest)}, {found} detections and forecast rows   ", end="", flush=True)
        if newest >= end_ms - 5 * MIN and found == last and found:
            stable += 1
            if stable >= 5:
                print()
                return
        else:
            stable = 0
        last = found
        time.sleep(3)
    raise SystemExit("the processor did not catch up")


MONTH_END = """
WITH f AS (SELECT * FROM cost_forecasts WHERE scope = 'total'), m AS (SELECT max(as_of) AS as_of FROM f)
SELECT (SELECT coalesce(sum(d.cost), 0) FROM cost_daily d CROSS JOIN m WHERE d.date <= m.as_of
          AND date_part('month', d.date) = date_part('month', m.as_of)
          AND date_part('year', d.date) = date_part('year', m.as_of))
     + (SELECT coalesce(sum(f.forecast), 0) FROM f CROSS JOIN m WHERE f.date > m.as_of
          AND date_part('month', f.date) = date_part('month', m.as_of)
          AND date_part('year', f.date) = date_part('year', m.as_of))
"""


class Incident:
    def __init__(self, kind, alertname, service, start_ms, end_ms):
        self.kind, self.alertname, self.service = kind, alertname, service
        self.start_ms, self.end_ms = start_ms, end_ms
        self.first_event_ms = None

    def explains(self, received_ms, labels):
        """Whether a notification is about this incident: any alert on its service (a spike
        may be told as an anomaly and as a change), or for the cost jump a budget alert, within
        15 minutes of its end (detection needs the windows after it)."""
        if self.service is None:
            about = labels.get("alertname") == self.alertname
        else:
            about = labels.get("service") == self.service
        return about and self.start_ms <= received_ms <= self.end_ms + 15 * MIN

    def alerted(self, received_ms, labels):
        """Whether it is the alert this incident should raise."""
        return labels.get("alertname") == self.alertname and self.explains(received_ms, labels)


def inject(o, stop_at, incidents, rnd):
    """Sends each incident's events every 5 s while it lasts."""
    spike, burst, deploy, cost = incidents
    while now_ms() < stop_at:
        t = now_ms()
        metrics, logs = [], []
        if spike.start_ms <= t < spike.end_ms:
            for _ in range(15):
                metrics.append({"timestamp": t, "service": "checkout", "name": "http.server.duration",
                                "value": round(rnd.lognormvariate(0, 0.3) * 1200, 3), "unit": "ms",
                                "host": "checkout-1", "version": "1.0.0",
                                "labels": {"endpoint": "/api/pay", "method": "POST", "status": "200"}})
            spike.first_event_ms = spike.first_event_ms or t
        if burst.start_ms <= t < burst.end_ms:
            for _ in range(10):
                logs.append({"timestamp": t, "service": "search", "level": "error",
                             "message": "GET /api/search failed: upstream timeout", "status_code": 502,
                             "duration_ms": 3000.0, "attributes": {"endpoint": "/api/search"}})
            burst.first_event_ms = burst.first_event_ms or t
        if deploy.start_ms <= t < deploy.end_ms:
            for _ in range(8):
                metrics.append({"timestamp": t, "service": "catalog", "name": "http.server.duration",
                                "value": round(rnd.lognormvariate(0, 0.4) * 40, 3), "unit": "ms",
                                "host": "catalog-1", "version": "1.99.0",
                                "labels": {"endpoint": "/api/items", "method": "GET", "status": "200"}})
            deploy.first_event_ms = deploy.first_event_ms or t
        if cost.start_ms <= t and cost.first_event_ms is None:
            yesterday = (t // 86_400_000 - 1) * 86_400_000
            stamp = lambda ms: datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
            bill = [{"charge_period_start": stamp(yesterday + h * 3_600_000),
                     "charge_period_end": stamp(yesterday + (h + 1) * 3_600_000),
                     "provider": "aws", "service": "checkout", "resource_id": "i-bench-jump",
                     "resource_type": "m7i.48xlarge", "region": "eu-west-1",
                     "cost": cost.hourly, "effective_cost": cost.hourly, "currency": "USD"}
                    for h in range(24)]
            o.send("billing", bill)
            cost.first_event_ms = t
        if metrics:
            o.send("metrics", metrics)
        if logs:
            o.send("logs", logs)
        time.sleep(max(0.0, 5 - (now_ms() - t) / 1000))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--live", default="30m")
    ap.add_argument("--days", type=int, default=2)
    ap.add_argument("--step", default="200ms")
    ap.add_argument("--rate", type=float, default=5.0, help="live events per second (= 1 / step)")
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "debug", "opslake"))
    args = ap.parse_args()
    live_s = parse_duration(args.live)
    work = tempfile.mkdtemp(prefix="opslake-bench-alerts-")
    print(f"work directory {work}")
    port, broker = start_tansu(work)
    wait_port(port)
    receiver = Receiver()
    o = Opslake(args.bin, work, port, receiver.url)
    try:
        end = datetime.now(timezone.utc)
        t = time.time()
        o.produce(["--seed", "7", "--only", "billing", "--start", iso(end - timedelta(days=35)),
                   "--end", iso(end - timedelta(days=args.days)), "--step", "1h"])
        o.produce(["--seed", "7", "--no-incidents", "--start", iso(end - timedelta(days=args.days)),
                   "--end", "now", "--step", args.step])
        print(f"history produced in {time.time() - t:.0f} s")
        wait_caught_up(o, now_ms())
        baseline = o.sql(MONTH_END)[0][0]
        budget = 1.3 * baseline
        print(f"month-end forecast {baseline:.0f}; budget {budget:.0f}")
        o.stop()
        o = Opslake(args.bin, work, port, receiver.url, budget=budget)
        history_notes = len(receiver.got)
        live_start = now_ms()
        traffic = o.produce(["--seed", "8", "--no-incidents", "--rate", str(args.rate),
                             "--duration", f"{int(live_s)}s"], wait=False)
        span = live_s * 1000
        at = lambda f: int(live_start + f * span)  # noqa: E731
        incidents = [
            Incident("latency spike", "OpslakeAnomaly", "checkout", at(0.15), at(0.15) + 3 * MIN),
            Incident("error burst", "OpslakeAnomaly", "search", at(0.35), at(0.35) + 3 * MIN),
            Incident("slow deploy", "OpslakeRegression", "catalog", at(0.55), live_start + span),
            Incident("cost jump", "OpslakeCostBudget", None, at(0.75), at(0.75) + MIN),
        ]
        incidents[3].hourly = baseline * 0.5 / 24
        print(f"live from {fmt(live_start)} for {args.live}; incidents at "
              + ", ".join(f"{i.kind} {fmt(i.start_ms)}" for i in incidents))
        inject(o, live_start + span, incidents, random.Random(3))
        traffic.wait()
        print("live traffic done; waiting 3 minutes for late notifications")
        time.sleep(180)
    finally:
        o.stop()
        broker.terminate()
        broker.wait(30)

    live = [g for g in receiver.got[history_notes:] if g[1] == "firing"]
    print()
    print(f"notifications during the history: {history_notes} (of data newer than max_age)")
    found = 0
    for i in incidents:
        hits = [g for g in live if i.alerted(g[0], g[2])]
        if hits:
            found += 1
            delay = (hits[0][0] - (i.first_event_ms or i.start_ms)) / 1000
            print(f"  {i.kind:14} at {fmt(i.start_ms)}: alerted after {delay:6.0f} s "
                  f"({hits[0][2].get('alertname')} {hits[0][3].get('summary', '')[:90]})")
            i.delay = delay
        else:
            print(f"  {i.kind:14} at {fmt(i.start_ms)}: MISSED")
            i.delay = None
    unexplained = [g for g in live if not any(i.explains(g[0], g[2]) for i in incidents)]
    for g in unexplained:
        print(f"  unexplained at {fmt(g[0])}: {g[2].get('alertname')} {g[2].get('service', '')} "
              f"{g[3].get('summary', '')[:100]}")
    total = len(live)
    delays = [i.delay for i in incidents if i.delay is not None]
    print()
    print(f"incidents alerted: {found}/{len(incidents)}")
    print(f"firing notifications: {total}, unexplained: {len(unexplained)} "
          f"({100 * len(unexplained) / max(total, 1):.1f}%, target under 5%)")
    if delays:
        print(f"time to notification: min {min(delays):.0f} s, max {max(delays):.0f} s (target under 30 s)")


if __name__ == "__main__":
    main()
