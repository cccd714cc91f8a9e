#!/usr/bin/env python3
"""Payloads made by the real OpenTelemetry Python SDK, encoded as the Collector's Kafka exporter
writes them (otlp_proto: the protobuf request; otlp_json: OTLP's JSON mapping, with hex trace and
span ids and enums as numbers), for the OTLP end-to-end test.

    otel_payloads.py OUT_DIR

Writes OUT_DIR/<n>-<what>.<pb|json> (one Kafka message each, in the order to send them) and
OUT_DIR/expected.json: what was recorded, to compare with the lake.

An instrumented "otel-shop" service records, with the SDK's default cumulative temporality:
a counter, an up-down counter, a gauge, an explicit-bucket histogram and an exponential one.
Phase 1 and 2 are two collections of one MeterProvider (cumulative points with one start
time); phase 3 is a new MeterProvider (the process restarted: a new start time, counts begin
again). A second service records an exponential histogram with delta temporality.
"""
import base64
import json
import logging
import os
import random
import sys

from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import (
    ExplicitBucketHistogramAggregation,
    ExponentialBucketHistogramAggregation,
    View,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

BOUNDS = [5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0]
RESOURCE = {
    "service.name": "otel-shop",
    "service.version": "2.0.1",
    "host.name": "otel-host-1",
    "deployment.environment": "test",
    "service.instance.id": "shop-1",
}


def to_json(message) -> bytes:
    """OTLP/JSON: camelCase, 64-bit integers as strings, enums as numbers, ids as hex."""
    d = MessageToDict(message, use_integers_for_enums=True)

    def fix(v):
        if isinstance(v, dict):
            return {
                k: (base64.b64decode(x).hex() if k in ("traceId", "spanId") and isinstance(x, str) else fix(x))
                for k, x in v.items()
            }
        if isinstance(v, list):
            return [fix(x) for x in v]
        return v

    return json.dumps(fix(d)).encode()


def exact_quantile(values, q):
    s = sorted(values)
    r = q * (len(s) - 1)
    lo, hi = int(r), min(int(r) + 1, len(s) - 1)
    return s[lo] + (r - lo) * (s[hi] - s[lo])


def provider(reader, attrs=RESOURCE):
    views = [
        View(instrument_name="rpc.duration", aggregation=ExponentialBucketHistogramAggregation(max_size=160)),
        View(instrument_name="batch.size", aggregation=ExponentialBucketHistogramAggregation(max_size=160)),
        View(instrument_name="http.server.request.duration", aggregation=ExplicitBucketHistogramAggregation(BOUNDS)),
    ]
    return MeterProvider(resource=Resource.create(attrs), metric_readers=[reader], views=views)


def main(out):
    os.makedirs(out, exist_ok=True)
    rng = random.Random(7)
    files = []
    expected = {"orders": [], "inflight": [], "temperature": [], "http_count": 0, "rpc": [], "batch": []}
    scales = {"rpc.duration": [], "batch.size": []}

    def write(name, request, encoding):
        n = len(files)
        ext = "pb" if encoding == "proto" else "json"
        path = os.path.join(out, f"{n:02d}-{name}.{ext}")
        with open(path, "wb") as f:
            f.write(request.SerializeToString() if encoding == "proto" else to_json(request))
        files.append(os.path.basename(path))

    def record_phase(meters, n):
        orders, inflight, temperature, http, rpc = meters
        for _ in range(n):
            orders.add(rng.randint(1, 3), {"region": "eu"})
            latency = rng.lognormvariate(3.5, 0.8)
            http.record(latency, {"http.route": "/pay"})
            rpc.record(latency * 1.5, {"rpc.method": "Charge"})
            expected["rpc"].append(latency * 1.5)
            expected["http_count"] += 1
        inflight.add(rng.randint(-2, 5))
        t = round(rng.uniform(20, 30), 2)
        temperature.set(t)
        expected["temperature"].append(t)

    def meters_of(p):
        m = p.get_meter("otel-shop")
        return (
            m.create_counter("orders"),
            m.create_up_down_counter("inflight"),
            m.create_gauge("temperature", unit="Cel"),
            m.create_histogram("http.server.request.duration", unit="ms"),
            m.create_histogram("rpc.duration", unit="ms"),
        )

    def points_of(data, name):
        return [
            p
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == name
            for p in m.data.data_points
        ]

    # Phase 1 and 2: one process, cumulative points with one start time.
    reader = InMemoryMetricReader()
    p1 = provider(reader)
    meters = meters_of(p1)
    for phase, (n, encoding) in enumerate([(400, "proto"), (300, "json")]):
        record_phase(meters, n)
        data = reader.get_metrics_data()
        expected["orders"].append(points_of(data, "orders")[0].value)
        expected["inflight"].append(points_of(data, "inflight")[0].value)
        scales["rpc.duration"] += [p.scale for p in points_of(data, "rpc.duration")]
        write(f"metrics-phase{phase + 1}", encode_metrics(data), encoding)
    # The process restarts: a new provider, a new start time, counts from zero.
    reader = InMemoryMetricReader()
    p2 = provider(reader)
    meters = meters_of(p2)
    record_phase(meters, 200)
    data = reader.get_metrics_data()
    expected["orders"].append(points_of(data, "orders")[0].value)
    expected["inflight"].append(points_of(data, "inflight")[0].value)
    scales["rpc.duration"] += [p.scale for p in points_of(data, "rpc.duration")]
    write("metrics-restarted", encode_metrics(data), "proto")

    # A service that exports deltas.
    reader = InMemoryMetricReader(preferred_temporality={Histogram: AggregationTemporality.DELTA})
    p3 = provider(reader, {"service.name": "otel-batcher"})
    sizes = p3.get_meter("otel-batcher").create_histogram("batch.size")
    for encoding in ["json", "proto"]:
        for _ in range(150):
            v = rng.uniform(1, 500)
            sizes.record(v)
            expected["batch"].append(v)
        data = reader.get_metrics_data()
        scales["batch.size"] += [p.scale for p in points_of(data, "batch.size")]
        write("metrics-delta", encode_metrics(data), encoding)

    # Logs through Python's logging, with a span in context for trace and span ids.
    exporter = InMemoryLogRecordExporter()
    lp = LoggerProvider(resource=Resource.create(RESOURCE))
    lp.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = logging.getLogger("otel-shop")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(LoggingHandler(level=logging.DEBUG, logger_provider=lp))
    span = NonRecordingSpan(
        SpanContext(trace_id=0x5B8EFFF798038103D269B633813FC60C, span_id=0xEEE19B7EC3C1B174,
                    is_remote=False, trace_flags=TraceFlags(1))
    )
    from opentelemetry import context
    token = context.attach(set_span_in_context(span))
    levels = {"debug": 3, "info": 5, "warning": 4, "error": 2}
    for level, n in levels.items():
        for i in range(n):
            extra = {"http.response.status_code": 502} if level == "error" else {"item": i}
            getattr(logger, level)(f"{level} event {i}", extra=extra)
    context.detach(token)
    records = exporter.get_finished_logs()
    half = len(records) // 2
    write("logs", encode_logs(records[:half]), "proto")
    write("logs", encode_logs(records[half:]), "json")
    expected["logs"] = {"debug": 3, "info": 5, "warn": 4, "error": 2}

    expected["rpc_p99"] = exact_quantile(expected["rpc"], 0.99)
    expected["rpc_count"] = len(expected["rpc"])
    expected["batch_count"] = len(expected["batch"])
    expected["batch_p50"] = exact_quantile(expected["batch"], 0.5)
    del expected["rpc"], expected["batch"]
    # The coarsest scale of each exponential histogram's points: its bucket accuracy.
    expected["rpc_scale"] = min(scales["rpc.duration"])
    expected["batch_scale"] = min(scales["batch.size"])
    expected["files"] = files
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
