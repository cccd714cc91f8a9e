#!/usr/bin/env python3
"""bench/leaks: opslake's leak detection and capacity forecasts against Prometheus'
predict_linear on a labelled set of resource gauges.

The set (bench/leaks/labelled.py, seeded; 57 series by default, or --random N series drawn at
random, which the method was not tuned on): leaks of several rates, with and without restarts,
after a deploy, fixed by a deploy; healthy series with a daily cycle, a garbage collector's
sawtooth, a warm-up, a cache that fills and levels off, a step after a deploy, noise, sparse
samples, gaps; disks and ratios filling towards a limit, and ones that never reach it. Each
series carries its truth (leaking or not, when the growth began, when the limit is reached).

opslake: the capacity job's own code (`processor/src/capacity`, through the example
`capacity_bench`), streamed as the job runs it: each hour of minutes folded, the hour judged,
the verdict kept, the forecast made at the end. The peer: predict_linear over the last 6 hours
(a least-squares line through the samples), called a leak when it projects >= 1% a day, and
extended to the limit for exhaustion (what people set up in Prometheus today).

Printed side by side: precision, recall, healthy series called leaking, the error of `since`,
the error of `exhausted_at` as a fraction of the time left, the 80% interval's coverage; then
the time of one hour of the job over 10,000 series.

Usage: python3 bench/leaks.py [--seed 7] [--random N] [--release] [--detail] [--cycle 10000]
"""
import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "leaks"))
import labelled  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HORIZON_MIN = 30 * 24 * 60
MIN_PCT_DAY = 1.0


def median(v):
    s = sorted(v)
    n = len(s)
    if n == 0:
        return float("nan")
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def predict_linear(rows, now_minute, limit, window_min=360):
    """Least-squares line through the last 6 hours of samples (the per-minute means, weighted
    by their counts), extended to the limit: (growth % per day, exhausted minute or None)."""
    pts = [(float(m), sm / cnt, float(cnt)) for (m, cnt, sm, mn, mx, ver) in rows
           if m > now_minute - window_min]
    if len(pts) < 2:
        return 0.0, None
    sw = sum(w for _, _, w in pts)
    mt = sum(w * t for t, _, w in pts) / sw
    my = sum(w * y for _, y, w in pts) / sw
    sxx = sum(w * (t - mt) ** 2 for t, _, w in pts)
    b = sum(w * (t - mt) * (y - my) for t, y, w in pts) / sxx if sxx else 0.0
    a = my - b * mt
    pct = 100.0 * b * 1440.0 / my if my else 0.0
    ex = None
    if limit is not None and b > 0:
        tc = max((limit - a) / b, float(now_minute))
        if tc - now_minute <= HORIZON_MIN:
            ex = tc
    return pct, ex


def run_opslake(series, release):
    """The example's verdict of every series, by id."""
    profile = ["--release"] if release else []
    cmd = ["cargo", "run", "-q", *profile, "-p", "opslake-processor", "--example",
           "capacity_bench"]
    payload = "\n".join(json.dumps({
        "id": s["id"], "kind": s["kind"], "limit": s["limit"], "now": s["now"],
        "rows": s["rows"]}) for s in series)
    out = subprocess.run(cmd, input=payload, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        sys.exit("capacity_bench failed:\n" + out.stderr)
    return {v["id"]: v for v in map(json.loads, out.stdout.splitlines())}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--random", type=int, default=0, help="N series drawn at random instead")
    ap.add_argument("--release", action="store_true", help="the example in the release profile")
    ap.add_argument("--detail", action="store_true")
    ap.add_argument("--cycle", type=int, default=10_000, help="series of the timed cycle (0: skip)")
    args = ap.parse_args()
    t0 = time.time()
    series = labelled.build_random(args.seed, args.random) if args.random else labelled.build(args.seed)
    print("%d labelled series (seed %d%s); running opslake's capacity code..." % (
        len(series), args.seed, ", random" if args.random else ""), file=sys.stderr)
    ours = run_opslake(series, args.release)
    c = {k: 0 for k in ("tp", "fp", "fn", "tn", "ptp", "pfp", "pfn", "ptn")}
    since_err, restarts_ok, restarts_n = [], 0, 0
    cap = []
    detail = []
    for s in series:
        v = ours[s["id"]]
        if s["kind"] == "memory":
            truth, got = bool(s["leak"]), bool(v["leaking"])
            pct, _ = predict_linear(s["rows"], s["now"], None)
            peer = pct >= MIN_PCT_DAY
            c[("tp" if got else "fn") if truth else ("fp" if got else "tn")] += 1
            c[("ptp" if peer else "pfn") if truth else ("pfp" if peer else "ptn")] += 1
            if truth and got and v["since"] is not None:
                since_err.append(abs(v["since"] - s["since"]) / 60.0)
                restarts_n += 1
                restarts_ok += int(v["restarts"] == len(s["restarts_true"]))
            detail.append("%-28s truth=%-5s opslake=%-5s peer=%-5s since_err=%s %s" % (
                s["id"], truth, got, peer,
                "-" if not (truth and got and v["since"] is not None)
                else "%.1fh" % (abs(v["since"] - s["since"]) / 60.0), v["method"]))
        if s["limit"] is not None:
            now, tr = s["now"], s["exhausted_at"]
            _, pex = predict_linear(s["rows"], now, s["limit"])
            ex, lo, hi = v["exhausted_at"], v["exhausted_at_low"], v["exhausted_at_high"]
            rec = {"truth_in": tr is not None and tr - now <= HORIZON_MIN}
            if rec["truth_in"]:
                left = tr - now
                rec["err"] = None if ex is None else abs(ex - tr) / left
                rec["cov"] = ex is not None and lo is not None and lo <= tr <= hi
                rec["perr"] = None if pex is None else abs(pex - tr) / left
            else:
                rec["null_ok"], rec["pnull_ok"] = ex is None, pex is None
            cap.append(rec)
            detail.append("%-28s limit: truth_left=%s err=%s covered=%s peer_err=%s %s" % (
                s["id"], "beyond" if not rec["truth_in"] else "%.1fd" % ((tr - now) / 1440),
                "-" if rec.get("err") is None else "%.3f" % rec["err"], rec.get("cov", "-"),
                "-" if rec.get("perr") is None else "%.3f" % rec["perr"], v["forecast_method"]))
    if args.detail:
        print("\n".join(detail))
        print()

    def pr(tp, fp, fn):
        return (tp / (tp + fp) if tp + fp else 1.0), (tp / (tp + fn) if tp + fn else 1.0)

    P, R = pr(c["tp"], c["fp"], c["fn"])
    pP, pR = pr(c["ptp"], c["pfp"], c["pfn"])
    inn = [x for x in cap if x["truth_in"]]
    out_ = [x for x in cap if not x["truth_in"]]
    errs = [x["err"] for x in inn if x["err"] is not None]
    perrs = [x["perr"] for x in inn if x["perr"] is not None]
    leaking = c["tp"] + c["fn"]
    healthy = c["fp"] + c["tn"]

    def medmax(v):
        return "%.3f / %.3f" % (median(v), max(v)) if v else "-"

    print("| metric | opslake | predict_linear 6h | target |")
    print("|---|---|---|---|")
    print("| leak precision | %.3f | %.3f | |" % (P, pP))
    print("| leak recall | %.3f (%d/%d) | %.3f (%d/%d) | 1.0 |" % (
        R, c["tp"], leaking, pR, c["ptp"], leaking))
    print("| healthy series called leaking | %d/%d | %d/%d | 0 |" % (
        c["fp"], healthy, c["pfp"], healthy))
    if since_err:
        print("| `since` error, median / max (h) | %.1f / %.1f | no `since` | <= 6 |" % (
            median(since_err), max(since_err)))
        print("| restarts counted exactly | %d/%d | n/a | |" % (restarts_ok, restarts_n))
    if inn:
        print("| `exhausted_at` error / time left, median / max | %s | %s | <= 0.10 |" % (
            medmax(errs), medmax(perrs)))
        print("| `exhausted_at` within 10%% of the time left | %d/%d | %d/%d | |" % (
            sum(1 for e in errs if e <= 0.10), len(inn), sum(1 for e in perrs if e <= 0.10), len(inn)))
        cov = sum(1 for x in inn if x["cov"])
        print("| 80%% interval covers the truth | %d/%d (%.0f%%) | no interval | >= 80%% |" % (
            cov, len(inn), 100.0 * cov / len(inn)))
    if out_:
        print("| null when not reached within 30 days | %d/%d | %d/%d | all |" % (
            sum(1 for x in out_ if x["null_ok"]), len(out_),
            sum(1 for x in out_ if x["pnull_ok"]), len(out_)))
    if args.cycle:
        profile = ["--release"] if args.release else []
        out = subprocess.run(["cargo", "run", "-q", *profile, "-p", "opslake-processor",
                              "--example", "capacity_bench", "--", "--cycle", str(args.cycle)],
                             capture_output=True, text=True, cwd=ROOT)
        if out.returncode == 0:
            r = json.loads(out.stdout)
            print("\nthe job's minute cycles over %d series (a week of history each), for an hour: "
                  "worst %.3f s, mean %.3f s (%s profile)" % (
                      r["series"], r["worst_seconds"], r["mean_seconds"],
                      "release" if args.release else "dev"))
    print("(%.0f s)" % (time.time() - t0), file=sys.stderr)


if __name__ == "__main__":
    main()
