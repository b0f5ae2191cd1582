"""A small OTLP trace receiver that writes everything it receives to one OTLP/JSON file.

Usage: otlp_capture.py --out FILE [--http HOST:PORT] [--grpc HOST:PORT]

It listens for OTLP/HTTP (protobuf or JSON bodies, POST /v1/traces) on --http (default
127.0.0.1:0, a free port) and, when --grpc is given, for OTLP/gRPC
(opentelemetry.proto.collector.trace.v1.TraceService/Export) on that address. Once both
listeners are up it prints one JSON line on stdout and flushes it:

    {"http": "http://127.0.0.1:PORT/v1/traces", "grpc": "http://127.0.0.1:PORT" | null}

After every accepted request it rewrites FILE (atomically, through a temporary file beside
it) as one ExportTraceServiceRequest in OTLP/JSON: lowerCamelCase field names, enums as
integers, 64-bit integers as strings, and traceId/spanId/parentSpanId (on spans and on
links) as lowercase hex as the OTLP/JSON encoding requires (protobuf's own JSON mapping
would give base64). Spans that arrived with the same resource and the same instrumentation
scope are grouped under one resourceSpans/scopeSpans entry, in arrival order, so the file
is what a batching exporter would have sent in one request. It runs until it receives
SIGTERM or SIGINT, then prints a one-line summary on stderr and exits 0.
"""

import argparse
import base64
import json
import os
import signal
import sys
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf.json_format import MessageToDict, ParseDict
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

TRACES_PATH = "/v1/traces"
ID_FIELDS = ("traceId", "spanId", "parentSpanId")


def split_address(text):
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def hex_ids(item):
    """Rewrites the base64 id fields of one span or link in place as lowercase hex."""
    for field in ID_FIELDS:
        if field in item:
            item[field] = base64.b64decode(item[field]).hex()


class Capture:
    """Everything received so far, grouped by resource and scope, written to one file."""

    def __init__(self, out):
        self.out = out
        self.lock = threading.Lock()
        # [(resource key, resource dict, schemaUrl, [(scope key, scope dict, schemaUrl, spans)])]
        self.resources = []
        self.requests = 0
        self.spans = 0

    def add(self, request):
        document = MessageToDict(request, use_integers_for_enums=True)
        with self.lock:
            for resource_spans in document.get("resourceSpans", []):
                scopes = self._slot(
                    self.resources,
                    resource_spans.get("resource", {}),
                    resource_spans.get("schemaUrl", ""),
                )
                for scope_spans in resource_spans.get("scopeSpans", []):
                    spans = self._slot(
                        scopes,
                        scope_spans.get("scope", {}),
                        scope_spans.get("schemaUrl", ""),
                    )
                    for span in scope_spans.get("spans", []):
                        hex_ids(span)
                        for link in span.get("links", []):
                            hex_ids(link)
                        spans.append(span)
                        self.spans += 1
            self.requests += 1
            self._write()

    @staticmethod
    def _slot(entries, value, schema_url):
        key = json.dumps([value, schema_url], sort_keys=True)
        for entry in entries:
            if entry[0] == key:
                return entry[3]
        entry = (key, value, schema_url, [])
        entries.append(entry)
        return entry[3]

    def document(self):
        resource_spans = []
        for _, resource, resource_schema, scopes in self.resources:
            scope_spans = []
            for _, scope, scope_schema, spans in scopes:
                entry = {"scope": scope, "spans": spans}
                if scope_schema:
                    entry["schemaUrl"] = scope_schema
                scope_spans.append(entry)
            entry = {"resource": resource, "scopeSpans": scope_spans}
            if resource_schema:
                entry["schemaUrl"] = resource_schema
            resource_spans.append(entry)
        return {"resourceSpans": resource_spans}

    def _write(self):
        temporary = f"{self.out}.tmp"
        with open(temporary, "w", encoding="utf-8") as file:
            json.dump(self.document(), file, indent=1)
            file.write("\n")
        os.replace(temporary, self.out)


def http_handler(capture):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            if self.path.split("?", 1)[0] != TRACES_PATH:
                self.send_error(404, f"only {TRACES_PATH} is served")
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            content_type = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip()
            request = trace_service_pb2.ExportTraceServiceRequest()
            try:
                if content_type == "application/json":
                    ParseDict(json.loads(body), request)
                else:
                    request.ParseFromString(body)
            except Exception as error:  # noqa: BLE001 - any decoding error is the client's
                self.send_error(400, f"cannot decode the request: {error}")
                return
            capture.add(request)
            reply = trace_service_pb2.ExportTraceServiceResponse()
            if content_type == "application/json":
                payload, reply_type = b"{}", "application/json"
            else:
                payload, reply_type = reply.SerializeToString(), "application/x-protobuf"
            self.send_response(200)
            self.send_header("Content-Type", reply_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format, *args):  # noqa: A002 - the base class's name
            pass

    return Handler


class GrpcTraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, capture):
        self.capture = capture

    def Export(self, request, context):  # noqa: N802 - the generated method name
        self.capture.add(request)
        return trace_service_pb2.ExportTraceServiceResponse()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--out", required=True, help="the OTLP/JSON file to (re)write")
    parser.add_argument("--http", type=split_address, default=("127.0.0.1", 0))
    parser.add_argument("--grpc", type=split_address, default=None)
    args = parser.parse_args()

    capture = Capture(args.out)
    capture._write()

    http_server = ThreadingHTTPServer(args.http, http_handler(capture))
    threading.Thread(target=http_server.serve_forever, daemon=True).start()
    http_host, http_port = http_server.server_address[:2]

    grpc_server = None
    grpc_url = None
    if args.grpc is not None:
        import grpc

        grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(GrpcTraceService(capture), grpc_server)
        host, port = args.grpc
        bound = grpc_server.add_insecure_port(f"{host}:{port}")
        grpc_server.start()
        grpc_url = f"http://{host}:{bound}"

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(json.dumps({"http": f"http://{http_host}:{http_port}{TRACES_PATH}", "grpc": grpc_url}), flush=True)
    while not stop.wait(0.5):
        pass

    http_server.shutdown()
    if grpc_server is not None:
        grpc_server.stop(grace=1).wait()
    print(
        f"otlp_capture: {capture.spans} spans in {capture.requests} requests written to {args.out}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
