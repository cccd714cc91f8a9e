#!/usr/bin/env python3
"""Labelled generator of resource gauges at 1-minute rollup resolution (seeded, pure Python).

Each series is simulated as raw samples (three per minute, or one every 5-10 minutes when
sparse), folded into per-minute rollups exactly like opslake's `metric_rollups_1m`:
(minute, count, sum, min, max, version). Each carries its truth:

- leak:          leaking at the end of the data (the "now" of the benchmark)
- since:         minute the (current) leak's growth began (None when not leaking)
- ever_leaked:   leaked at some point (a leak fixed by a deploy: leak=False, ever_leaked=True)
- cleared_at:    minute the leak stopped (fixed leaks)
- exhausted_at:  for series with a limit, the first minute the generating process, extended
                 forward without noise (its GC peak included, its restarts applied), reaches the
                 limit; None when not within EXTEND_DAYS
- limit, kind ('memory' | 'disk' | 'ratio'), shape (a label)

Usage: python3 gen.py [--seed 7] [--summary]
"""
import argparse
import math
import random

MIN_PER_DAY = 1440
EXTEND_DAYS = 60   # how far the truth of exhausted_at is searched forward
MB = 1024.0 * 1024.0


class Proc:
    """A generating process. Times are minutes from the series' start (float)."""

    def __init__(self, rng, days, base, kind="memory", limit=None, gc=None, daily=None,
                 noise=0.0, ar=0.0, leak=None, restarts=None, deploys=None, warmup=None,
                 growth=None, cleanup=None, clip1=False, sparse=None, gaps=None,
                 bump=None, wander=None):
        self.rng = random.Random(rng.getrandbits(64))  # own stream: series stay independent
        self.days = days
        self.n = int(days * MIN_PER_DAY)
        self.base = base
        self.kind = kind
        self.limit = limit
        self.gc = gc                  # (amplitude, period_min)
        self.daily = daily            # (amplitude, phase_frac, shape) shape: sin | business
        self.noise = noise            # sd of white noise per sample (absolute)
        self.ar = ar                  # sd of AR(1) minute noise (absolute), rho 0.97
        self.leak = leak              # dict(rate=abs per day, since=min, until=min|None, traffic=bool)
        self.restarts = restarts      # dict(kind='every', hours=h, first=min) | dict(kind='oom', frac=f) | list
        self.deploys = deploys or []  # list of dict(t=min, version=str, step=abs, restart=bool)
        self.warmup = warmup          # (amplitude, tau_min): after start and each restart
        self.growth = growth          # dict(rate=abs per day, since=min, seasonal=bool)
        self.cleanup = cleanup        # dict(every_h=h, keep=frac): disk rotation drops growth
        self.clip1 = clip1
        self.sparse = sparse          # (min_gap, max_gap) minutes between samples
        self.gaps = gaps or []        # [(start_min, end_min)] no data
        self.bump = bump              # (t0, dur_min, amp): memory held then freed (batch job)
        self.wander = wander          # (amp, period_min): slow bounded oscillation (not daily)

    # --- deterministic parts -------------------------------------------------------------
    def daily_at(self, t):
        if not self.daily:
            return 0.0
        amp, ph, shape = self.daily
        x = (t / MIN_PER_DAY + ph) % 1.0
        if shape == "business":
            # 0 at night, ramps 07-09, plateau, ramps down 18-21
            h = x * 24.0
            if h < 7 or h >= 21:
                v = 0.0
            elif h < 9:
                v = (h - 7) / 2.0
            elif h < 18:
                v = 1.0
            else:
                v = 1.0 - (h - 18) / 3.0
            return amp * v
        return amp * 0.5 * (1.0 + math.sin(2.0 * math.pi * x))

    def traffic(self, t):
        """Relative traffic in [0.2, 1.8] with mean ~1 (for traffic-driven leak/growth)."""
        x = (t / MIN_PER_DAY + (self.daily[1] if self.daily else 0.0)) % 1.0
        return 1.0 + 0.8 * math.sin(2.0 * math.pi * x)

    def version_at(self, t):
        v = "1.0.0"
        for d in self.deploys:
            if t >= d["t"]:
                v = d["version"]
        return v

    def restart_times(self, t_end):
        """Scheduled (non-OOM) restarts and deploy restarts up to t_end."""
        out = []
        r = self.restarts
        if isinstance(r, list):
            out += [x for x in r if x <= t_end]
        elif r and r["kind"] == "every":
            t = r["first"]
            while t <= t_end:
                out.append(t)
                t += r["hours"] * 60.0
        out += [d["t"] for d in self.deploys if d.get("restart", True) and d["t"] <= t_end]
        return sorted(out)

    def simulate_det(self, t_end, step=1.0):
        """Deterministic level (no noise, no GC) per minute up to t_end, with OOM restarts.

        Returns (levels list indexed by minute, restart minutes list)."""
        sched = self.restart_times(t_end)
        si = 0
        last_restart = 0.0
        leak_acc = 0.0
        growth_acc = 0.0
        levels = []
        restarts = []
        n = int(t_end) + 1
        oom = isinstance(self.restarts, dict) and self.restarts.get("kind") == "oom"
        gc_amp = self.gc[0] if self.gc else 0.0
        last_clean = 0.0
        for m in range(n):
            t = float(m)
            while si < len(sched) and sched[si] <= t:
                last_restart = sched[si]
                leak_acc = 0.0
                restarts.append(sched[si])
                si += 1
            # leak accumulation (per minute)
            if self.leak:
                lk = self.leak
                active = t >= lk["since"] and (lk.get("until") is None or t < lk["until"])
                if active:
                    rate = lk["rate"] / MIN_PER_DAY
                    if lk.get("traffic"):
                        rate *= self.traffic(t)
                    leak_acc += rate
            if self.growth:
                g = self.growth
                if t >= g["since"]:
                    rate = g["rate"] / MIN_PER_DAY
                    if g.get("seasonal"):
                        rate *= self.traffic(t)
                    growth_acc += rate
                if self.cleanup and t - last_clean >= self.cleanup["every_h"] * 60.0:
                    growth_acc *= self.cleanup["keep"]
                    last_clean = t
            v = self.base + leak_acc + growth_acc + self.daily_at(t)
            if self.warmup:
                amp, tau = self.warmup
                v += amp * (1.0 - math.exp(-(t - last_restart) / tau))
            for d in self.deploys:
                if t >= d["t"]:
                    v += d.get("step", 0.0)
            if self.bump:
                t0, dur, amp = self.bump
                if t0 <= t < t0 + dur:
                    # grows linearly for the first 70%, then frees over the rest
                    f = (t - t0) / dur
                    v += amp * (f / 0.7 if f < 0.7 else (1.0 - f) / 0.3)
            if self.wander:
                amp, per = self.wander
                v += amp * math.sin(2.0 * math.pi * t / per)
            if oom and self.limit and v + gc_amp >= self.limit * self.restarts.get("frac", 1.0):
                levels.append(v)
                last_restart = t + 1.0
                leak_acc = 0.0
                restarts.append(t + 1.0)
                continue
            levels.append(v)
        return levels, restarts

    # --- samples and rollups --------------------------------------------------------------
    def rollups(self):
        """(rows, restarts, exhausted_at): rows of the data; the first minute after the data at
        which the process, continued with its noise and GC (same generator), has a sample at or
        above the limit (None when not within EXTEND_DAYS or no limit)."""
        extend = int(EXTEND_DAYS * MIN_PER_DAY) if self.limit is not None else 0
        total = self.n + extend
        levels, restarts = self.simulate_det(total - 1)
        rng = self.rng
        ar_state = 0.0
        gc_phase = rng.random()
        rows = []
        next_sparse = 0.0
        ri = 0
        gc_amp = self.gc[0] if self.gc else 0.0
        exhausted = None
        oom = isinstance(self.restarts, dict) and self.restarts.get("kind") == "oom"
        for m in range(total):
            if self.ar:
                ar_state = 0.97 * ar_state + rng.gauss(0.0, self.ar * math.sqrt(1 - 0.97 ** 2))
            while ri < len(restarts) and restarts[ri] <= m:
                gc_phase = rng.random()
                ri += 1
            if m >= self.n:
                if oom:
                    # an OOM kill is the limit being reached (at the process' GC peak)
                    nxt = [r for r in restarts if r >= self.n]
                    exhausted = nxt[0] - 1.0 if nxt else None
                    break
                # the future: only the crossing matters (skip minutes that cannot reach it)
                if levels[m] + gc_amp + abs(ar_state) + 6.0 * self.noise < self.limit:
                    continue
                times = [m, m + 1.0 / 3.0, m + 2.0 / 3.0]
            else:
                if any(a <= m < b for a, b in self.gaps):
                    continue
                if self.sparse:
                    times = []
                    while next_sparse < m + 1:
                        if next_sparse >= m:
                            times.append(next_sparse)
                        next_sparse += rng.uniform(*self.sparse)
                else:
                    times = [m, m + 1.0 / 3.0, m + 2.0 / 3.0]
                if not times:
                    continue
            vals = []
            for t in times:
                v = levels[m] + ar_state
                if self.gc:
                    amp, per = self.gc
                    v += amp * ((t / per + gc_phase) % 1.0)
                if self.noise:
                    v += rng.gauss(0.0, self.noise)
                if self.clip1:
                    v = min(max(v, 0.0), 1.0)
                vals.append(max(v, 0.0))
            if m >= self.n:
                if max(vals) >= self.limit * (1.0 - 1e-9):
                    exhausted = float(m)
                    break
                continue
            rows.append((m, len(vals), sum(vals), min(vals), max(vals), self.version_at(m)))
        return rows, [r for r in restarts if r < self.n], exhausted


def build(seed=7):
    """The labelled set: list of dicts (see module doc)."""
    rng = random.Random(seed)
    out = []

    def add(name, kind, proc, leak, since=None, shape="", ever=None, cleared_at=None,
            ever_since=None):
        rows, restarts, exhausted = proc.rollups()
        now = float(proc.n - 1)
        out.append({
            "id": "%02d-%s" % (len(out), name),
            "name": name, "kind": kind, "shape": shape or name,
            "limit": proc.limit, "rows": rows, "now": now,
            "leak": leak, "since": since, "ever_leaked": leak if ever is None else ever,
            "cleared_at": cleared_at, "ever_since": since if ever_since is None else ever_since,
            "exhausted_at": exhausted,
            "restarts_true": [r for r in restarts if since is not None and r > since],
        })

    B = 512 * MB
    D = MIN_PER_DAY
    # ---------------- leaks ---------------------------------------------------------------
    # slow leaks (a few % per day), starting at various times, GC sawtooth on top
    for i, (pct, days, since_d) in enumerate([(2.0, 7, 2.0), (3.0, 6, 1.5), (5.0, 5, 1.0),
                                              (4.0, 7, 0.0), (2.5, 7, 3.3)]):
        base = B * rng.uniform(0.6, 1.6)
        p = Proc(rng, days, base, gc=(base * rng.uniform(0.05, 0.15), rng.uniform(2, 6)),
                 noise=base * 0.004, leak=dict(rate=base * pct / 100.0, since=since_d * D))
        add("leak_slow_%d" % i, "memory", p, True, since_d * D, "leak slow %.1f%%/d" % pct)
    # fast leaks
    for i, (pct, days, since_d) in enumerate([(40.0, 4, 2.5), (150.0, 3, 2.3), (25.0, 5, 3.0)]):
        base = B * rng.uniform(0.6, 1.6)
        p = Proc(rng, days, base, gc=(base * 0.1, rng.uniform(2, 6)), noise=base * 0.005,
                 leak=dict(rate=base * pct / 100.0, since=since_d * D))
        add("leak_fast_%d" % i, "memory", p, True, since_d * D, "leak fast %.0f%%/d" % pct)
    # leak with daily cycle (traffic-driven leak and memory)
    for i, (pct, days, since_d) in enumerate([(8.0, 6, 2.0), (4.0, 7, 1.0)]):
        base = B * rng.uniform(0.8, 1.2)
        p = Proc(rng, days, base, gc=(base * 0.08, 3.0), daily=(base * 0.25, rng.random(), "sin"),
                 noise=base * 0.004, leak=dict(rate=base * pct / 100.0, since=since_d * D, traffic=True))
        add("leak_daily_%d" % i, "memory", p, True, since_d * D, "leak %.0f%%/d + daily cycle" % pct)
    # leak after a deploy (version change)
    for i, (pct, days, dep_d) in enumerate([(10.0, 5, 2.2), (3.0, 7, 2.7), (30.0, 4, 2.9)]):
        base = B * rng.uniform(0.6, 1.6)
        p = Proc(rng, days, base, gc=(base * 0.1, 4.0), noise=base * 0.004,
                 warmup=(base * 0.05, 20.0),
                 deploys=[dict(t=dep_d * D - 333, version="1.1.0", restart=True)],
                 leak=dict(rate=base * pct / 100.0, since=dep_d * D - 333))
        add("leak_deploy_%d" % i, "memory", p, True, dep_d * D - 333, "leak %.0f%%/d after deploy" % pct)
    # leaks with restarts (sawtooth): OOM at a limit, or periodic restarts
    for i, (pct, days, since_d, frac) in enumerate([(60.0, 5, 1.3, 1.0), (35.0, 6, 0.5, 1.0),
                                                    (120.0, 4, 1.2, 1.0)]):
        base = B
        limit = base * 1.5
        p = Proc(rng, days, base, limit=limit, gc=(base * 0.06, 3.0), noise=base * 0.003,
                 warmup=(base * 0.04, 15.0), restarts=dict(kind="oom", frac=frac),
                 leak=dict(rate=base * pct / 100.0, since=since_d * D))
        add("leak_oom_%d" % i, "memory", p, True, since_d * D, "leak %.0f%%/d, OOM-restarted at limit" % pct)
    for i, (pct, days, every_h, since_d) in enumerate([(30.0, 6, 19.0, 1.3), (15.0, 7, 31.0, 0.7),
                                                       (50.0, 5, 11.0, 1.9)]):
        base = B * rng.uniform(0.8, 1.2)
        limit = base * 2.0
        p = Proc(rng, days, base, limit=limit, gc=(base * 0.08, 5.0), noise=base * 0.004,
                 warmup=(base * 0.03, 10.0),
                 restarts=dict(kind="every", hours=every_h, first=since_d * D + every_h * 60 * 0.8),
                 leak=dict(rate=base * pct / 100.0, since=since_d * D))
        add("leak_restarted_%d" % i, "memory", p, True, since_d * D, "leak %.0f%%/d, restarted every %.0fh" % (pct, every_h))
    # leaks in noisy / sparse series
    base = B
    p = Proc(rng, 6, base, gc=(base * 0.15, 3.0), noise=base * 0.02, ar=base * 0.02,
             leak=dict(rate=base * 0.06, since=2.0 * D))
    add("leak_noisy", "memory", p, True, 2.0 * D, "leak 6%/d, noisy")
    p = Proc(rng, 6, base, gc=(base * 0.1, 4.0), noise=base * 0.005, sparse=(5.0, 10.0),
             gaps=[(3.1 * D, 3.1 * D + 240)], leak=dict(rate=base * 0.05, since=1.5 * D))
    add("leak_sparse", "memory", p, True, 1.5 * D, "leak 5%/d, sparse + gap")
    # memory leak with a container limit, no restart yet (forecast to the limit)
    for i, (pct, days, since_d, head) in enumerate([(20.0, 5, 1.0, 2.5), (8.0, 7, 2.0, 2.0)]):
        base = B
        p = Proc(rng, days, base, limit=base * head, gc=(base * 0.05, 3.0), noise=base * 0.003,
                 daily=(base * 0.1, rng.random(), "sin") if i else None,
                 leak=dict(rate=base * pct / 100.0, since=since_d * D))
        add("leak_limit_%d" % i, "memory", p, True, since_d * D, "leak %.0f%%/d to a limit" % pct)

    # ---------------- healthy memory --------------------------------------------------------
    for i in range(3):
        base = B * rng.uniform(0.6, 1.6)
        p = Proc(rng, rng.choice([4, 5, 7]), base, gc=(base * 0.08, 3.0),
                 daily=(base * rng.uniform(0.15, 0.4), rng.random(), "sin" if i != 1 else "business"),
                 noise=base * 0.004)
        add("healthy_daily_%d" % i, "memory", p, False, shape="daily cycle")
    for i in range(3):
        base = B * rng.uniform(0.6, 1.6)
        p = Proc(rng, rng.choice([3, 5, 6]), base,
                 gc=(base * rng.uniform(0.1, 0.4), rng.uniform(1.5, 12.0)), noise=base * 0.003)
        add("healthy_gc_%d" % i, "memory", p, False, shape="GC sawtooth")
    for i, tau_h in enumerate([1.0, 4.0, 10.0]):
        base = B * rng.uniform(0.6, 1.6)
        p = Proc(rng, 5, base, gc=(base * 0.08, 3.0), noise=base * 0.004,
                 warmup=(base * rng.uniform(0.3, 0.8), tau_h * 60.0),
                 deploys=[dict(t=1.7 * D, version="1.1.0", restart=True)])
        add("healthy_warmup_%d" % i, "memory", p, False, shape="cache warm-up tau %gh" % tau_h)
    for i, step in enumerate([0.2, 0.5]):
        base = B * rng.uniform(0.6, 1.6)
        p = Proc(rng, 5, base, gc=(base * 0.08, 3.0), noise=base * 0.004,
                 deploys=[dict(t=(2.0 + i) * D + 77, version="2.0.0", step=base * step, restart=True)])
        add("healthy_step_deploy_%d" % i, "memory", p, False, shape="step +%d%% after deploy" % (step * 100))
    base = B
    p = Proc(rng, 5, base, gc=(base * 0.08, 3.0), noise=base * 0.004,
             deploys=[dict(t=2.5 * D, version="1.0.1", step=base * 0.3, restart=False)])
    add("healthy_step_live", "memory", p, False, shape="step +30% (config change, no restart)")
    for i in range(2):
        base = B * rng.uniform(0.6, 1.6)
        p = Proc(rng, 6, base, gc=(base * 0.2, 2.0), noise=base * 0.03, ar=base * 0.03,
                 daily=(base * 0.1, rng.random(), "sin") if i else None)
        add("healthy_noisy_%d" % i, "memory", p, False, shape="noisy")
    for i in range(2):
        base = B * rng.uniform(0.6, 1.6)
        p = Proc(rng, 6, base, gc=(base * 0.1, 4.0), noise=base * 0.005, sparse=(5.0, 10.0),
                 daily=(base * 0.2, rng.random(), "sin") if i else None,
                 gaps=[(2.2 * D, 2.2 * D + 300)])
        add("healthy_sparse_%d" % i, "memory", p, False, shape="sparse + gap")
    base = B
    p = Proc(rng, 6, base, gc=(base * 0.08, 3.0), noise=base * 0.004, warmup=(base * 0.4, 120.0),
             daily=(base * 0.15, 0.3, "sin"), restarts=dict(kind="every", hours=24.0, first=0.15 * D))
    add("healthy_restarted_daily", "memory", p, False, shape="restarted nightly, warm-up each time")
    base = B
    p = Proc(rng, 5, base, gc=(base * 0.08, 3.0), noise=base * 0.004, bump=(3.0 * D, 600.0, base * 0.5))
    add("healthy_batch_bump", "memory", p, False, shape="batch holds memory 10 h then frees it")
    base = B
    p = Proc(rng, 7, base, gc=(base * 0.08, 3.0), noise=base * 0.004, wander=(base * 0.06, 3.1 * D))
    add("healthy_wander", "memory", p, False, shape="slow bounded wander (3-day period)")
    # a leak fixed by a deploy: leaked, then cleared
    base = B
    p = Proc(rng, 6, base, gc=(base * 0.08, 3.0), noise=base * 0.004,
             leak=dict(rate=base * 0.3, since=1.0 * D, until=3.5 * D),
             deploys=[dict(t=3.5 * D, version="1.0.1", restart=True)])
    add("fixed_leak_deploy", "memory", p, False, shape="leak 30%/d fixed by deploy at day 3.5",
        ever=True, cleared_at=3.5 * D, ever_since=1.0 * D)

    # ---------------- capacity: disks, ratios ----------------------------------------------
    GB = 1024.0 * MB
    for i, (size, used, per_day, days) in enumerate([(100, 40, 6.0, 5), (500, 300, 15.0, 7),
                                                     (50, 44, 0.7, 4), (200, 100, 1.0, 6),
                                                     (1000, 500, 20.0, 7), (80, 60, 4.0, 3)]):
        p = Proc(rng, days, used * GB, kind="disk", limit=size * GB, noise=0.02 * GB,
                 growth=dict(rate=per_day * GB, since=0.0))
        add("disk_linear_%d" % i, "disk", p, False, shape="disk +%g GB/d of %d GB" % (per_day, size))
    for i, (size, used, per_day, days) in enumerate([(150, 50, 8.0, 6), (1000, 700, 25.0, 7)]):
        p = Proc(rng, days, used * GB, kind="disk", limit=size * GB, noise=0.05 * GB,
                 daily=(0.0, rng.random(), "sin"),
                 growth=dict(rate=per_day * GB, since=0.0, seasonal=True))
        add("disk_seasonal_%d" % i, "disk", p, False, shape="disk +%g GB/d, daytime writes" % per_day)
    p = Proc(rng, 6, 30 * GB, kind="disk", limit=100 * GB, noise=0.05 * GB,
             growth=dict(rate=20 * GB, since=0.0), cleanup=dict(every_h=24.0, keep=0.1))
    add("disk_rotated", "disk", p, False, shape="disk +20 GB/d, rotated daily (never fills)")
    p = Proc(rng, 5, 60 * GB, kind="disk", limit=100 * GB, noise=0.05 * GB)
    add("disk_flat", "disk", p, False, shape="disk flat")
    p = Proc(rng, 6, 20 * GB, kind="disk", limit=100 * GB, noise=0.03 * GB,
             growth=dict(rate=2 * GB, since=2.5 * D))
    add("disk_late_start", "disk", p, False, shape="disk starts filling at day 2.5, +2 GB/d")
    for i, (u0, per_day, amp, days) in enumerate([(0.45, 0.04, 0.2, 6), (0.6, 0.015, 0.1, 7),
                                                  (0.3, 0.002, 0.25, 5)]):
        p = Proc(rng, days, u0, kind="ratio", limit=1.0, noise=0.01,
                 daily=(amp, rng.random(), "sin"), growth=dict(rate=per_day, since=0.0), clip1=True)
        add("util_trend_%d" % i, "ratio", p, False, shape="utilization +%g/d, daily cycle" % per_day)
    return out


def build_random(seed=101, n=60):
    """A held-out set: every parameter drawn at random within plausible ranges (not tuned on).

    Labels follow the same rules; a leak is generated with >= 16 h of growth before the end
    (the detector calls a leak after 12 h of growth and 3 hourly confirmations; REPORT.md)
    and a healthy bump ends >= 6 h before
    the end (while it grows it is indistinguishable from a leak)."""
    rng = random.Random(seed)
    out = []
    D = MIN_PER_DAY

    def add(name, kind, proc, leak, since=None, shape=""):
        rows, restarts, exhausted = proc.rollups()
        now = float(proc.n - 1)
        out.append({
            "id": "%02d-%s" % (len(out), name), "name": name, "kind": kind, "shape": shape,
            "limit": proc.limit, "rows": rows, "now": now, "leak": leak, "since": since,
            "ever_leaked": leak, "cleared_at": None, "ever_since": since,
            "exhausted_at": exhausted,
            "restarts_true": [r for r in restarts if since is not None and r > since],
        })

    def lu(a, b):
        return math.exp(rng.uniform(math.log(a), math.log(b)))

    def common(base, days):
        kw = {}
        if rng.random() < 0.7:
            kw["gc"] = (base * rng.uniform(0.03, 0.25), rng.uniform(1.5, 15.0))
        kw["noise"] = base * lu(0.002, 0.02)
        if rng.random() < 0.25:
            kw["ar"] = base * lu(0.003, 0.02)
        if rng.random() < 0.4:
            kw["daily"] = (base * rng.uniform(0.05, 0.35), rng.random(),
                           rng.choice(["sin", "business"]))
        if rng.random() < 0.15:
            kw["sparse"] = (5.0, 10.0)
        if rng.random() < 0.2:
            g0 = rng.uniform(0.5, days - 1.0) * D
            kw["gaps"] = [(g0, g0 + rng.uniform(60, 300))]
        return kw

    kinds = (["leak"] * 5 + ["leak_deploy"] * 2 + ["leak_restart"] * 3 + ["daily"] * 2 + ["gc"]
             + ["warmup"] * 2 + ["step"] * 2 + ["restarted"] + ["bump"] + ["wander"]
             + ["disk"] * 3 + ["util"] * 2)
    for k in range(n):
        kind = rng.choice(kinds)
        days = rng.choice([3, 4, 5, 6, 7])
        base = 512 * MB * rng.uniform(0.3, 3.0)
        kw = common(base, days)
        end = days * D
        if kind in ("leak", "leak_deploy"):
            pct = lu(1.5, 200.0)
            since = rng.uniform(0.0, end - 16 * 60 - 60)
            if kind == "leak_deploy":
                since = max(since, 6 * 60.0)
                kw["deploys"] = [dict(t=since, version="2.0.0", restart=True)]
                if rng.random() < 0.5:
                    kw["warmup"] = (base * rng.uniform(0.02, 0.2), rng.uniform(10, 60))
            if kw.get("daily") and rng.random() < 0.5:
                traffic = True
            else:
                traffic = False
            p = Proc(rng, days, base, leak=dict(rate=base * pct / 100.0, since=since, traffic=traffic), **kw)
            add(kind, "memory", p, True, since, "%s %.1f%%/d" % (kind, pct))
        elif kind == "leak_restart":
            pct = lu(15.0, 200.0)
            since = rng.uniform(0.0, end * 0.4)
            kw.pop("daily", None) if rng.random() < 0.5 else None
            if rng.random() < 0.5:
                limit = base * rng.uniform(1.3, 2.5)
                p = Proc(rng, days, base, limit=limit, restarts=dict(kind="oom", frac=1.0),
                         warmup=(base * 0.03, 15.0), leak=dict(rate=base * pct / 100.0, since=since), **kw)
                label = "oom"
            else:
                every = rng.uniform(8.0, 36.0)
                limit = base * rng.uniform(1.5, 3.0)
                p = Proc(rng, days, base, limit=limit, warmup=(base * 0.03, 15.0),
                         restarts=dict(kind="every", hours=every, first=since + every * 60 * rng.uniform(0.5, 1.0)),
                         leak=dict(rate=base * pct / 100.0, since=since), **kw)
                label = "every %.0fh" % every
            # a leak needs >= 14 h of growth in total before the end to be labelled (see doc)
            add("leak_restart", "memory", p, True, since, "leak %.0f%%/d restarted (%s)" % (pct, label))
        elif kind == "daily":
            kw["daily"] = (base * rng.uniform(0.05, 0.5), rng.random(), rng.choice(["sin", "business"]))
            add("h_daily", "memory", Proc(rng, days, base, **kw), False, shape="daily")
        elif kind == "gc":
            kw["gc"] = (base * rng.uniform(0.05, 0.5), rng.uniform(1.0, 30.0))
            add("h_gc", "memory", Proc(rng, days, base, **kw), False, shape="gc %.0fmin" % kw["gc"][1])
        elif kind == "warmup":
            tau = rng.uniform(0.5, 8.0)
            t_dep = rng.uniform(0.5, days - 1.5) * D
            p = Proc(rng, days, base, warmup=(base * rng.uniform(0.1, 1.0), tau * 60.0),
                     deploys=[dict(t=t_dep, version="1.1.0", restart=True)], **kw)
            add("h_warmup", "memory", p, False, shape="warm-up tau %.1fh" % tau)
        elif kind == "step":
            t_dep = rng.uniform(0.5, days - 0.5) * D
            live = rng.random() < 0.4
            p = Proc(rng, days, base, deploys=[dict(t=t_dep, version="1.1.0",
                                                    step=base * rng.uniform(0.1, 0.8), restart=not live)], **kw)
            add("h_step", "memory", p, False, shape="step%s" % (" live" if live else " deploy"))
        elif kind == "restarted":
            every = rng.choice([12.0, 24.0, rng.uniform(6, 48)])
            p = Proc(rng, days, base, warmup=(base * rng.uniform(0.1, 0.6), rng.uniform(0.5, 4.0) * 60.0),
                     restarts=dict(kind="every", hours=every, first=rng.uniform(0, every) * 60.0), **kw)
            add("h_restarted", "memory", p, False, shape="restarted every %.0fh + warm-up" % every)
        elif kind == "bump":
            dur = rng.uniform(3.0, 12.0) * 60.0
            t0 = rng.uniform(0.3 * end, end - dur - 6 * 60)
            p = Proc(rng, days, base, bump=(t0, dur, base * rng.uniform(0.1, 0.6)), **kw)
            add("h_bump", "memory", p, False, shape="bump %.0fh" % (dur / 60))
        elif kind == "wander":
            p = Proc(rng, days, base, wander=(base * rng.uniform(0.02, 0.08), rng.uniform(2.0, 5.0) * D), **kw)
            add("h_wander", "memory", p, False, shape="wander")
        elif kind == "disk":
            GB = 1024.0 * MB
            size = rng.choice([50, 100, 200, 500, 1000]) * GB
            used0 = size * rng.uniform(0.1, 0.6)
            left_d = lu(1.0, 60.0)
            per_day = (size - used0) / (days + left_d)
            late = rng.random() < 0.25
            g_since = rng.uniform(0.5, days - 1.5) * D if late else 0.0
            if late:
                per_day = (size - used0) / (days - g_since / D + left_d)
            p = Proc(rng, days, used0, kind="disk", limit=size, noise=size * lu(1e-4, 2e-3),
                     daily=(0.0, rng.random(), "sin") if rng.random() < 0.4 else None,
                     growth=dict(rate=per_day, since=g_since, seasonal=rng.random() < 0.5))
            add("disk", "disk", p, False, shape="disk %.0f%%/d%s" % (100 * per_day / size, " late" if late else ""))
        else:
            left_d = lu(1.0, 60.0)
            amp = rng.uniform(0.05, 0.3)
            u0 = rng.uniform(0.2, 0.6)
            per_day = max(1e-4, (1.0 - amp - u0) / (days + left_d))
            p = Proc(rng, days, u0, kind="ratio", limit=1.0, noise=lu(0.002, 0.02),
                     daily=(amp, rng.random(), "sin"), growth=dict(rate=per_day, since=0.0), clip1=True)
            add("util", "ratio", p, False, shape="util +%.3f/d" % per_day)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    series = build(args.seed)
    for s in series:
        ex = s["exhausted_at"]
        left = "-" if ex is None else "%.1fd" % ((ex - s["now"]) / MIN_PER_DAY)
        print("%-26s %-7s leak=%-5s since=%-7s left=%-6s rows=%d  %s" % (
            s["id"], s["kind"], s["leak"],
            "-" if s["since"] is None else "%.1fh" % (s["since"] / 60.0), left, len(s["rows"]), s["shape"]))
    print(len(series), "series")


if __name__ == "__main__":
    main()
