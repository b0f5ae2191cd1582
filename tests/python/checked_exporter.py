"""A span exporter wrapper the test scripts share: it counts what was exported and which
exports failed, so a script can exit non-zero when the collector refused its spans."""

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult


class CheckedExporter(SpanExporter):
    """Passes spans to the OTLP exporter and counts the exports that did not succeed."""

    def __init__(self, inner):
        self.inner = inner
        self.failures = 0
        self.exported = 0

    def export(self, spans):
        result = self.inner.export(spans)
        if result == SpanExportResult.SUCCESS:
            self.exported += len(spans)
        else:
            self.failures += 1
        return result

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis=30000):
        return self.inner.force_flush(timeout_millis)
