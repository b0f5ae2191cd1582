"""Sends a small messaging flow to a causeway collector with the OpenTelemetry Python SDK.

Usage: send_spans.py grpc|http ENDPOINT SERVICE_NAME

ENDPOINT is http://HOST:PORT for gRPC, or the full http://HOST:PORT/v1/traces URL for HTTP.
The spans are exported synchronously (SimpleSpanProcessor), so every export has been
answered when the script exits. It prints one JSON document on stdout describing what it
sent (ids in lowercase hex) and exits non-zero if any export failed.
"""

import json
import sys
import time

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, set_span_in_context

SCOPE_NAME = "causeway-e2e-python"


class CheckedExporter(SpanExporter):
    """Wraps an OTLP exporter and remembers whether every export succeeded."""

    def __init__(self, inner):
        self.inner = inner
        self.failures = 0

    def export(self, spans):
        result = self.inner.export(spans)
        if result != SpanExportResult.SUCCESS:
            self.failures += 1
        return result

    def shutdown(self):
        self.inner.shutdown()


def make_exporter(protocol, endpoint):
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=endpoint, insecure=True, timeout=10)
    if protocol == "http":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=endpoint, timeout=10)
    raise SystemExit(f"unknown protocol {protocol!r}: expected grpc or http")


def hex_span(span):
    context = span.get_span_context()
    return {
        "name": span.name,
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
        "parent_span_id": format(span.parent.span_id, "016x") if span.parent else None,
        "start_ns": span.start_time,
        "end_ns": span.end_time,
    }


def main():
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    protocol, endpoint, service = sys.argv[1:]
    exporter = CheckedExporter(make_exporter(protocol, endpoint))
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer(SCOPE_NAME, "1.0.0")

    base = time.time_ns() - 5_000_000_000
    sent = []
    send = tracer.start_span(
        "orders send",
        kind=SpanKind.PRODUCER,
        start_time=base,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.destination.name": "orders",
            "messaging.message.conversation_id": "ord-py-7",
            "order.total": 12.5,
            "order.lines": 3,
        },
    )
    send.add_event("enqueued", {"attempt": 1}, timestamp=base + 1_000_000)
    send.set_status(Status(StatusCode.OK))
    send.end(end_time=base + 3_000_000)
    sent.append(hex_span(send))

    process = tracer.start_span(
        "orders process",
        context=set_span_in_context(send),
        kind=SpanKind.CONSUMER,
        start_time=base + 20_000_000,
        links=[Link(send.get_span_context(), {"link.reason": "creation context"})],
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": "orders",
            "messaging.consumer.group.name": "billing",
            "messaging.message.conversation_id": "ord-py-7",
        },
    )
    process.set_status(Status(StatusCode.ERROR, "payment declined"))
    process.end(end_time=base + 40_000_000)
    sent.append(hex_span(process))

    provider.shutdown()
    print(json.dumps({"service": service, "scope": SCOPE_NAME, "spans": sent}))
    if exporter.failures:
        raise SystemExit(f"{exporter.failures} exports to {endpoint} failed")


if __name__ == "__main__":
    main()
