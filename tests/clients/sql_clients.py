#!/usr/bin/env python3
"""Real PostgreSQL and Flight SQL clients from PyPI, driven by tests/e2e/sql_protocols.rs.

    sql_clients.py psycopg HOST PORT PASSWORD   < requests.json
    sql_clients.py adbc URI TOKEN               < requests.json

Each request is {"sql": ..., "params": [...]} (or {"table_schema": NAME} for ADBC); each answer,
printed as one JSON document, is {"columns": [...], "types": [...], "rows": [[...]]} or
{"error": "..."}. Timestamps print as ISO 8601 with their offset, bytes as hex.
"""
import datetime
import decimal
import json
import sys


def plain(v):
    if isinstance(v, datetime.datetime):
        return v.isoformat()
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    return v


def param(v):
    """A parameter: {"timestamp": ISO} stands for a datetime."""
    if isinstance(v, dict) and "timestamp" in v:
        return datetime.datetime.fromisoformat(v["timestamp"].replace("Z", "+00:00"))
    return v


def run_psycopg(host, port, password, requests):
    import psycopg

    conn = psycopg.connect(host=host, port=int(port), user="grafana", dbname="opslake",
                           password=password, autocommit=True, connect_timeout=10)
    out = []
    for r in requests:
        try:
            with conn.cursor() as cur:
                params = [param(p) for p in r.get("params", [])]
                # psycopg sends a query without parameters by the simple protocol, one with
                # parameters, or "prepare", by the extended protocol (as pgx, JDBC and Grafana).
                if r.get("simple"):
                    cur.execute(r["sql"].encode(), prepare=False)
                else:
                    cur.execute(r["sql"], params or None, prepare=r.get("prepare", False))
                cols = [d.name for d in cur.description] if cur.description else []
                types = [conn.adapters.types.get(d.type_code).name
                         if conn.adapters.types.get(d.type_code) else str(d.type_code)
                         for d in (cur.description or [])]
                rows = [[plain(v) for v in row] for row in cur.fetchall()] if cols else []
                out.append({"columns": cols, "types": types, "rows": rows})
        except psycopg.Error as e:
            out.append({"error": str(e).strip(), "sqlstate": e.sqlstate})
    # The session stays usable after an error.
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
        out.append({"after_errors": cur.fetchone()[0]})
    conn.close()
    return out


def run_adbc(uri, token, requests):
    import adbc_driver_flightsql.dbapi as flight_sql
    import adbc_driver_manager

    kwargs = {"adbc.flight.sql.authorization_header": f"Bearer {token}"} if token else {}
    out = []
    try:
        conn = flight_sql.connect(uri, db_kwargs=kwargs)
    except adbc_driver_manager.Error as e:
        return [{"error": str(e)}]
    for r in requests:
        try:
            if "table_schema" in r:
                schema = conn.adbc_get_table_schema(r["table_schema"])
                out.append({"columns": schema.names, "types": [str(t) for t in schema.types]})
                continue
            if r.get("objects"):
                objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
                tables = sorted(t["table_name"] for c in objects
                                for s in (c["catalog_db_schemas"] or [])
                                for t in (s["db_schema_tables"] or []))
                out.append({"tables": tables})
                continue
            if r.get("info"):
                info = conn.adbc_get_info()
                out.append({"info": {str(k): plain(v) for k, v in info.items()}})
                continue
            with conn.cursor() as cur:
                params = r.get("params")
                if params is not None:
                    # A prepared statement: prepared once, then run with its parameters bound.
                    cur.adbc_prepare(r["sql"])
                    cur.execute(r["sql"], [param(p) for p in params])
                else:
                    cur.execute(r["sql"])
                table = cur.fetch_arrow_table()
                out.append({"columns": table.column_names,
                            "types": [str(t) for t in table.schema.types],
                            "rows": [[plain(v) for v in row.values()] for row in table.to_pylist()]})
        except adbc_driver_manager.Error as e:
            out.append({"error": str(e)})
    conn.close()
    return out


def main():
    requests = json.load(sys.stdin)
    if sys.argv[1] == "psycopg":
        out = run_psycopg(sys.argv[2], sys.argv[3], sys.argv[4], requests)
    elif sys.argv[1] == "adbc":
        out = run_adbc(sys.argv[2], sys.argv[3], requests)
    else:
        sys.exit(f"unknown client {sys.argv[1]}")
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
