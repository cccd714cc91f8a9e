#!/usr/bin/env python3
"""bench/console: how fast the web console shows a large lake, in a real headless Chromium.

1. writes a lake with `bench_lake` (N metric events over 48 hours, 90 days of a 200-resource
   bill) and folds it with `opslake process --once` (rollups, costs, opportunities),
2. starts `opslake serve` (release) on loopback with its default settings (result cache on),
3. opens `/` and `/services/{service}` for the lake's last 6 hours (`?from=…&to=…`, the
   default range of both pages) and last 24 hours, each RUNS times in a fresh browser session
   (empty HTTP cache: every asset is fetched), through chromedriver's WebDriver protocol:
   - first contentful paint (the browser's own `first-contentful-paint`),
   - first meaningful paint: the first section drawn with its data (`opslake:first-data`),
   - complete: every section and chart drawn (`opslake:complete`),
   - bytes transferred (compressed, headers included: `transferSize` of the document and
     every resource); the first visit after the server starts is reported apart (cold caches),
4. prints the medians and p95 against the targets (1 s; 500 KB), the time the console's own
   chart code takes to draw its heaviest charts, and the weight of the console's assets.

No peer here: Grafana is not packaged for this machine, and opslake's own console is what the
targets are about. Usage: python3 bench/console.py [--events N] [--runs K]
Needs: cargo build --release --bin opslake -p opslake -p opslake-processor --example bench_lake,
Debian's chromium and chromium-driver.
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(ROOT, "target", os.environ.get("BENCH_PROFILE", "release"))
T0_MS = 1_795_341_600_000  # bench_lake's first metric event: 2026-11-22T10:00:00Z
HOUR = 3_600_000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"{url} did not answer within {timeout} s")


def call(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read() or b"{}").get("value")


class Session:
    """One fresh Chromium (new profile: empty cache) through chromedriver."""

    def __init__(self, driver):
        self.driver = driver
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": shutil.which("chromium") or "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900"]}}}}
        self.id = call("POST", f"{driver}/session", caps)["sessionId"]

    def js(self, script):
        return call("POST", f"{self.driver}/session/{self.id}/execute/sync", {"script": script, "args": []})

    def measure(self, url):
        call("POST", f"{self.driver}/session/{self.id}/url", {"url": url})
        deadline = time.time() + 120
        while self.js("return document.body.dataset.state") != "ready":
            if time.time() > deadline:
                sys.exit(f"{url} was not complete within 120 s")
            time.sleep(0.02)
        return self.js("""
            const mark = (n) => { const m = performance.getEntriesByName(n); return m.length ? m[0].startTime : null; };
            const nav = performance.getEntriesByType('navigation')[0];
            const res = performance.getEntriesByType('resource');
            return {
              fcp: mark('first-contentful-paint'),
              first_data: mark('opslake:first-data'),
              complete: mark('opslake:complete'),
              bytes: nav.transferSize + res.reduce((a, r) => a + r.transferSize, 0),
              decoded: nav.decodedBodySize + res.reduce((a, r) => a + r.decodedBodySize, 0),
              requests: 1 + res.length,
              charts: document.querySelectorAll('.chart svg').length,
            };""")

    def chart_speed(self, base):
        """Milliseconds to draw a 1200-px chart of 5 lines x 240 points, and of 7 stacked bar
        groups x 90 days with two bands: the console's heaviest charts."""
        call("POST", f"{self.driver}/session/{self.id}/url", {"url": base + "/sql"})
        return call("POST", f"{self.driver}/session/{self.id}/execute/async", {"args": [], "script": """
            const done = arguments[arguments.length - 1];
            import('/console/chart.js').then(({ timeChart }) => {
              const box = document.createElement('div');
              box.style.width = '1200px';
              document.body.append(box);
              const line = (k, n, step) => Array.from({ length: n }, (_, i) => [i * step, 200 + 100 * Math.sin(i / 10 + k)]);
              const lines = { unit: 'ms', series: [0, 1, 2, 3, 4].map((k) => ({ name: 's' + k, cls: 'c' + k, points: line(k, 240, 60e3) })) };
              const day = 86400e3;
              const bars = { unit: 'money', bars: { bucketMs: day, groups: [0, 1, 2, 3, 4, 5, 6].map((k) => ({ name: 'g' + k, cls: 'c' + k, points: line(k, 90, day) })) },
                bands: [{ name: '95', cls: 'band95', lower: line(0, 30, day), upper: line(1, 30, day) }, { name: '80', cls: 'band80', lower: line(0, 30, day), upper: line(1, 30, day) }] };
              const time = (spec) => { const t0 = performance.now(); for (let i = 0; i < 50; i++) timeChart(box, spec); return (performance.now() - t0) / 50; };
              done({ lines: time(lines), bars: time(bars) });
            });"""})

    def close(self):
        call("DELETE", f"{self.driver}/session/{self.id}")


def p95(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--lake", help="reuse this lake (written and folded when missing)")
    args = ap.parse_args()
    for exe in ["opslake", os.path.join("examples", "bench_lake")]:
        if not os.path.exists(os.path.join(REL, exe)):
            sys.exit(f"missing {REL}/{exe}: cargo build --release --bin opslake -p opslake "
                     "-p opslake-processor --example bench_lake")
    work = tempfile.mkdtemp(prefix="bench-console-")
    lake = args.lake or os.path.join(work, "lake")
    procs = []
    try:
        if not os.path.exists(os.path.join(lake, "_log")):
            t = time.perf_counter()
            print(f"writing {args.events:,} metric events and 90 days of bills...", flush=True)
            subprocess.run([os.path.join(REL, "examples", "bench_lake"), lake, str(args.events), "1", "48", "90"],
                           check=True, stderr=subprocess.DEVNULL)
            print(f"  written in {time.perf_counter() - t:.1f} s; folding rollups and costs...", flush=True)
            t = time.perf_counter()
            subprocess.run([os.path.join(REL, "opslake"), "process", "--once", "--lake", lake], check=True,
                           stdout=subprocess.DEVNULL)
            print(f"  folded in {time.perf_counter() - t:.1f} s", flush=True)
        port = free_port()
        env = dict(os.environ, OPSLAKE_LAKE=lake, OPSLAKE_LISTEN=f"127.0.0.1:{port}", RUST_LOG="warn")
        procs.append(subprocess.Popen([os.path.join(REL, "opslake"), "serve"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/healthz")
        dport = free_port()
        procs.append(subprocess.Popen(["chromedriver", f"--port={dport}"], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        driver = f"http://127.0.0.1:{dport}"
        wait_http(f"{driver}/status")
        end = T0_MS + 48 * HOUR
        pages = []
        for hours in (6, 24):
            window = f"from={end - hours * HOUR}&to={end}"
            pages.append((f"/ (last {hours} h)", f"/?{window}"))
            pages.append((f"/services/service-03 (last {hours} h)", f"/services/service-03?{window}"))
        results = {name: [] for name, _ in pages}
        cold = {}
        for run in range(args.runs + 1):
            for name, path in pages:
                s = Session(driver)
                try:
                    m = s.measure(base + path)
                finally:
                    s.close()
                if run == 0:
                    cold[name] = m
                else:
                    results[name].append(m)
            print(f"  run {run}/{args.runs} done", flush=True)

        profile = os.path.basename(REL)
        print(f"\nconsole over {args.events:,} metric events ({profile} build, fresh browser each visit)\n")
        print(f"{'page':40} {'FCP ms':>8} {'first data ms':>14} {'complete ms':>12} {'p95 complete':>13} "
              f"{'KB sent':>8} {'KB decoded':>11} {'requests':>9}")
        for name, _ in pages:
            ms = results[name]
            med = lambda k: statistics.median(x[k] for x in ms)
            print(f"{name:40} {med('fcp'):8.0f} {med('first_data'):14.0f} {med('complete'):12.0f} "
                  f"{p95([x['complete'] for x in ms]):13.0f} {med('bytes') / 1024:8.1f} "
                  f"{med('decoded') / 1024:11.1f} {med('requests'):9.0f}")
        print("\nfirst visit after the server started (cold caches):")
        for name, _ in pages:
            m = cold[name]
            print(f"  {name:38} first data {m['first_data']:6.0f} ms, complete {m['complete']:6.0f} ms")
        s = Session(driver)
        try:
            speed = s.chart_speed(base)
        finally:
            s.close()
        print(f"\ncharts (chart.js, no library): 5 lines x 240 points {speed['lines']:.2f} ms; "
              f"7 stacked bar groups x 90 days + 2 bands {speed['bars']:.2f} ms (mean of 50 draws)")
        import gzip
        assets = [os.path.join(dp, f) for dp, _, fs in os.walk(os.path.join(ROOT, "query-api", "console")) for f in fs]
        raw = sum(os.path.getsize(a) for a in assets)
        packed = sum(len(gzip.compress(open(a, "rb").read())) for a in assets)
        print(f"console assets: {len(assets)} files, {raw / 1024:.1f} KB, {packed / 1024:.1f} KB gzipped "
              f"(chart.js {os.path.getsize(os.path.join(ROOT, 'query-api', 'console', 'chart.js')) / 1024:.1f} KB)")
        worst = max(statistics.median(x["complete"] for x in results[n]) for n, _ in pages)
        heaviest = max(statistics.median(x["bytes"] for x in results[n]) for n, _ in pages)
        print(f"\ntargets: complete under 1000 ms (worst median {worst:.0f} ms: "
              f"{'met' if worst < 1000 else 'MISSED'}); under 500 KB "
              f"(heaviest {heaviest / 1024:.0f} KB: {'met' if heaviest < 500 * 1024 else 'MISSED'})")
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        if not args.lake:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
