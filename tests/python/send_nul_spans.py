"""Sends, in one OTLP/gRPC export, a clean span and a span whose name, attribute and
conversation ID hold NUL (valid in OTLP's strings), with the OpenTelemetry Python SDK.

Usage: send_nul_spans.py ENDPOINT SERVICE_NAME

ENDPOINT is http://HOST:PORT. Both spans are exported in one request (a batch processor,
flushed). It prints one JSON document on stdout naming the trace (lowercase hex) and exits
non-zero if the export failed.
"""

import json
import sys

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, set_span_in_context

from checked_exporter import CheckedExporter


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    endpoint, service = sys.argv[1:]
    exporter = CheckedExporter(OTLPSpanExporter(endpoint=endpoint, insecure=True, timeout=10))
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=60_000))
    tracer = provider.get_tracer("causeway-e2e-python", "1.0.0")

    clean = tracer.start_span("clean send", kind=SpanKind.PRODUCER)
    hostile = tracer.start_span(
        "bad\x00name",
        context=set_span_in_context(clean),
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "kafka",
            "messaging.destination.name": "orders",
            "messaging.message.conversation_id": "ord\x00nul",
            "note": "a\x00b",
        },
    )
    hostile.end()
    clean.end()
    provider.force_flush()
    provider.shutdown()
    trace_id = format(clean.get_span_context().trace_id, "032x")
    print(json.dumps({"trace_id": trace_id, "exported": exporter.exported}))
    if exporter.failures:
        raise SystemExit(f"{exporter.failures} exports to {endpoint} failed")


if __name__ == "__main__":
    main()
