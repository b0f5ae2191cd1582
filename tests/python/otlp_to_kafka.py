"""Writes OTLP trace records to a Kafka topic, as an OpenTelemetry Collector's `kafka`
exporter does: each record one ExportTraceServiceRequest, serialised with the
`opentelemetry-proto` package (otlp_proto) or as OTLP/JSON (otlp_json), produced with
`confluent-kafka`. None of causeway's code is involved.

Usage:
  otlp_to_kafka.py --bootstrap HOST:PORT --topic otlp_spans --records N --spans M
                   [--json-records J] [--malformed K] [--partitions P] [--service NAME]
                   [--pause-ms MS]

Every record holds one trace of M spans (a root and M-1 children); its trace id is new.
Records are produced one per batch (linger.ms=0, a flush after each) because tansu 0.6's
high watermark counts batches; --pause-ms waits that long after each record, to keep
producing while a test does something else. Prints one JSON document on stdout:
  {"records": [{"partition", "offset", "format", "trace_id", "spans"}], "malformed": K}
and exits non-zero when a delivery fails.
"""

import argparse
import json
import secrets
import sys
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span


def trace_spans(trace_id, count, start_ns):
    """A root and count-1 children, 1 ms apart."""
    root = secrets.token_bytes(8)
    spans = []
    for index in range(count):
        span_id = root if index == 0 else secrets.token_bytes(8)
        spans.append(
            {
                "trace_id": trace_id,
                "span_id": span_id,
                "parent": b"" if index == 0 else root,
                "name": "send orders" if index == 0 else f"work {index}",
                "kind": 4 if index == 0 else 1,
                "start": start_ns + index * 1_000_000,
                "end": start_ns + index * 1_000_000 + 500_000,
            }
        )
    return spans


def as_protobuf(service, spans):
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(
                    attributes=[KeyValue(key="service.name", value=AnyValue(string_value=service))]
                ),
                scope_spans=[
                    ScopeSpans(
                        spans=[
                            Span(
                                trace_id=s["trace_id"],
                                span_id=s["span_id"],
                                parent_span_id=s["parent"],
                                name=s["name"],
                                kind=s["kind"],
                                start_time_unix_nano=s["start"],
                                end_time_unix_nano=s["end"],
                            )
                            for s in spans
                        ]
                    )
                ],
            )
        ]
    )
    return request.SerializeToString()


def as_json(service, spans):
    # OTLP/JSON: ids as lowercase hex, 64-bit integers as decimal strings.
    document = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": service}}]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": s["trace_id"].hex(),
                                "spanId": s["span_id"].hex(),
                                "parentSpanId": s["parent"].hex(),
                                "name": s["name"],
                                "kind": s["kind"],
                                "startTimeUnixNano": str(s["start"]),
                                "endTimeUnixNano": str(s["end"]),
                            }
                            for s in spans
                        ]
                    }
                ],
            }
        ]
    }
    return json.dumps(document).encode()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", default="otlp_spans")
    parser.add_argument("--records", type=int, default=10)
    parser.add_argument("--spans", type=int, default=10)
    parser.add_argument("--json-records", type=int, default=0)
    parser.add_argument("--malformed", type=int, default=0)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--service", default="kafka-exporter")
    parser.add_argument("--pause-ms", type=int, default=0)
    args = parser.parse_args()

    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    if args.topic not in admin.list_topics(timeout=10).topics:
        for future in admin.create_topics(
            [NewTopic(args.topic, num_partitions=args.partitions, replication_factor=1)]
        ).values():
            future.result()

    producer = Producer(
        {"bootstrap.servers": args.bootstrap, "linger.ms": 0, "batch.num.messages": 1}
    )
    records = []
    failures = []

    def delivered(error, message, record):
        if error is not None:
            failures.append(str(error))
        else:
            record["partition"] = message.partition()
            record["offset"] = message.offset()

    now = time.time_ns()
    plan = ["proto"] * args.records + ["json"] * args.json_records + ["malformed"] * args.malformed
    for index, kind in enumerate(plan):
        if kind == "malformed":
            value = b"\xff" * 32 if index % 2 else b'{"resourceSpans": 7}'
            record = {"format": kind, "trace_id": None, "spans": 0}
        else:
            trace_id = secrets.token_bytes(16)
            spans = trace_spans(trace_id, args.spans, now - 60_000_000_000 + index * 10_000_000)
            value = as_protobuf(args.service, spans) if kind == "proto" else as_json(args.service, spans)
            record = {"format": kind, "trace_id": trace_id.hex(), "spans": len(spans)}
        records.append(record)
        producer.produce(
            args.topic,
            value=value,
            key=str(index).encode(),
            on_delivery=lambda error, message, record=record: delivered(error, message, record),
        )
        producer.flush(10)
        if args.pause_ms:
            time.sleep(args.pause_ms / 1000)
    remaining = producer.flush(30)
    print(json.dumps({"records": records, "malformed": args.malformed}))
    if failures or remaining:
        print(f"delivery failed: {failures} ({remaining} not flushed)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
