#!/usr/bin/env python3
"""Reads one table of an opslake lake as a Delta Lake table with two independent readers,
Python `deltalake` (delta-rs) and Polars, for the Delta end-to-end checks (CONTRACT section 11):

    delta_read.py LAKE TABLE [VERSION]

VERSION reads that Delta version of the table (time travel) instead of the latest.

LAKE is a directory (or file:// URL) or an object store URL such as s3://bucket/prefix. For S3
the settings come from the environment opslake itself reads: AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT (or AWS_ENDPOINT_URL) and AWS_ALLOW_HTTP (for
moto or MinIO on http://127.0.0.1).

Prints one JSON object:
    {"version": <Delta version>, "txn": <transaction_version("opslake")>,
     "rows": <rows read by deltalake>, "polars_rows": <rows read by Polars>,
     "distinct_provenance": <distinct (_topic, _partition, _offset, _index)> or null,
     "timestamp_type": <Arrow type of the first timestamp column> or null,
     "by_service": {service: [rows, sum of value]} when the table has both columns,
     "operations": the Delta history's operations, newest first}
and exits non-zero with a message on stderr on any error.
"""
import json
import os
import sys

PROVENANCE = ["_topic", "_partition", "_offset", "_index"]


def storage_options(location):
    """The object store settings for `location`, from opslake's environment variables."""
    if "://" not in location or location.startswith("file://"):
        return None
    opts = {}
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION"):
        if os.environ.get(key):
            opts[key] = os.environ[key]
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT")
    if endpoint:
        opts["AWS_ENDPOINT_URL"] = endpoint
        if endpoint.startswith("http://"):
            opts["AWS_ALLOW_HTTP"] = "true"
    if os.environ.get("AWS_ALLOW_HTTP"):
        opts["AWS_ALLOW_HTTP"] = os.environ["AWS_ALLOW_HTTP"]
    return opts or None


def table_uri(location, table):
    if location.startswith("file://"):
        location = location[len("file://"):]
    return location.rstrip("/") + "/" + table


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: delta_read.py LAKE TABLE [VERSION]")
    location, table = sys.argv[1], sys.argv[2]
    version = int(sys.argv[3]) if len(sys.argv) == 4 else None
    import polars as pl
    import pyarrow as pa
    from deltalake import DeltaTable

    uri = table_uri(location, table)
    opts = storage_options(location)
    dt = DeltaTable(uri, storage_options=opts, version=version)
    data = dt.to_pyarrow_table()
    frame = pl.read_delta(uri, version=version, storage_options=opts)

    distinct = None
    if all(c in data.column_names for c in PROVENANCE):
        keys = data.select(PROVENANCE).group_by(PROVENANCE).aggregate([])
        distinct = keys.num_rows
    timestamp_type = next(
        (str(f.type) for f in data.schema if pa.types.is_timestamp(f.type)), None
    )
    # Both readers must agree on the rows, not only on their number.
    if distinct is not None and frame.height:
        polars_keys = frame.select(PROVENANCE).unique().height
        if polars_keys != distinct:
            sys.exit(f"polars sees {polars_keys} distinct provenance keys, deltalake {distinct}")
    by_service = None
    if "service" in data.column_names and "value" in data.column_names:
        agg = data.group_by(["service"]).aggregate([("value", "count"), ("value", "sum")])
        by_service = {
            row["service"]: [row["value_count"], row["value_sum"]] for row in agg.to_pylist()
        }
    operations = [h.get("operation") for h in dt.history()]
    print(json.dumps({
        "by_service": by_service,
        "operations": operations,
        "version": dt.version(),
        "txn": dt.transaction_version("opslake"),
        "rows": data.num_rows,
        "polars_rows": frame.height,
        "distinct_provenance": distinct,
        "timestamp_type": timestamp_type,
    }))


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except Exception as e:  # any reader error: a message and a failing exit code
        print(f"delta_read.py: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
