#!/usr/bin/env python3
"""bench/rollups: opslake's rollup computation against DuckDB's exact quantile_cont, on the same
Parquet raw data, in one run.

1. writes a lake of N synthetic metric events (default 10,000,000; 20 services x 5 endpoints x
   2 versions over 2 hours) with `bench_lake` (the files and commit log ingest would write),
2. times `opslake process --once` (1-minute rollups with DDSketch percentiles, 1-hour rollups
   from the minute sketches),
3. times DuckDB (pip, all cores) computing count, min, max, mean and exact
   quantile_cont(value, [0.5, 0.9, 0.95, 0.99]) with the same grouping over the same files,
   and once more grouping by the files' `series` column (the shortcut opslake's fold takes),
4. prints both times, the ratio, and opslake's largest relative error against DuckDB's exact
   percentiles over every group.

Usage: python3 bench/rollups.py [--events N]
Needs a release build: cargo build --release --bin opslake -p opslake -p opslake-processor --example bench_lake
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(ROOT, "target", "release")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000_000)
    args = ap.parse_args()
    try:
        import duckdb
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "duckdb"], check=True)
        import duckdb
    work = tempfile.mkdtemp(prefix="opslake-bench-rollups-")
    lake = os.path.join(work, "lake")
    try:
        print(f"writing {args.events:,} events to {lake} ...", flush=True)
        subprocess.run([os.path.join(REL, "examples", "bench_lake"), lake, str(args.events)], check=True)
        raw = os.path.join(lake, "metrics", "**", "*.parquet")

        t = time.perf_counter()
        subprocess.run([os.path.join(REL, "opslake"), "process", "--once", "--lake", lake], check=True,
                       stdout=subprocess.DEVNULL)
        t_opslake = time.perf_counter() - t

        con = duckdb.connect()
        t = time.perf_counter()
        con.execute(f"""
            CREATE TABLE exact AS
            SELECT time_bucket(INTERVAL 1 minute, "timestamp") AS window_start, service, name, version,
                   CAST(labels AS VARCHAR) AS labels, count(*) AS n, min(value) AS mn, max(value) AS mx,
                   avg(value) AS mean, quantile_cont(value, [0.5, 0.9, 0.95, 0.99]) AS q
            FROM read_parquet('{raw}', hive_partitioning = false)
            GROUP BY ALL""")
        t_duckdb = time.perf_counter() - t

        # The same aggregates grouped by the raw files' `series` column (the series' identity
        # that ingest writes, which opslake's fold reads): DuckDB given the same shortcut.
        t = time.perf_counter()
        con.execute(f"""
            CREATE TABLE exact_by_series AS
            SELECT time_bucket(INTERVAL 1 minute, "timestamp") AS window_start, series,
                   count(*) AS n, min(value) AS mn, max(value) AS mx,
                   avg(value) AS mean, quantile_cont(value, [0.5, 0.9, 0.95, 0.99]) AS q
            FROM read_parquet('{raw}', hive_partitioning = false)
            GROUP BY ALL""")
        t_duckdb_series = time.perf_counter() - t

        rollups = os.path.join(lake, "metric_rollups_1m", "**", "*.parquet")
        worst = con.execute(f"""
            WITH o AS (
              SELECT window_start, service, name, version, CAST(labels AS VARCHAR) AS labels,
                     count, p50, p90, p95, p99 FROM read_parquet('{rollups}', hive_partitioning = false))
            SELECT count(*) AS groups,
                   sum(CASE WHEN o.count <> e.n THEN 1 ELSE 0 END) AS count_mismatches,
                   max(greatest(abs(o.p50 - e.q[1]) / e.q[1], abs(o.p90 - e.q[2]) / e.q[2],
                                abs(o.p95 - e.q[3]) / e.q[3], abs(o.p99 - e.q[4]) / e.q[4])) AS worst
            FROM o JOIN exact e USING (window_start, service, name, version, labels)""").fetchone()
        groups_exact = con.execute("SELECT count(*) FROM exact").fetchone()[0]
        print()
        print(f"events                      {args.events:,}")
        print(f"groups (window x series)    {groups_exact:,} exact, {worst[0]:,} joined, {worst[1]} count mismatches")
        print(f"opslake process --once      {t_opslake:8.2f} s")
        print(f"DuckDB exact quantile_cont  {t_duckdb:8.2f} s")
        print(f"ratio (DuckDB / opslake)    {t_duckdb / t_opslake:8.2f} x")
        print(f"DuckDB grouping by series   {t_duckdb_series:8.2f} s   (ratio {t_duckdb_series / t_opslake:.2f} x)")
        print(f"largest relative error      {worst[2] * 100:8.3f} %")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
