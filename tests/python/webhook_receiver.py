"""A webhook receiver built on Python's standard http.server, for alert hook tests.

Usage: webhook_receiver.py --out FILE --secret SECRET [--listen HOST:PORT]
                           [--signature-header NAME]

It listens on --listen (default 127.0.0.1:0, a free port) and, once up, prints one JSON
line on stdout and flushes it:

    {"url": "http://127.0.0.1:PORT/hook"}

Every POST body is checked the way an Alertmanager webhook consumer checks a signed
delivery: the header --signature-header (default X-Causeway-Signature) must be
"sha256=" followed by the hex HMAC-SHA256 of the body under --secret, computed here with
Python's hmac module and compared in constant time. Each request is appended to FILE as one
JSON line:

    {"path": "/hook", "content_type": "application/json", "signature": "sha256=..." | null,
     "signature_valid": true | false, "payload": {...} | null, "error": null | "..."}

A request with a valid signature and a JSON body is answered 200; a missing or wrong
signature 401, a body that is not JSON 400 (both still recorded). SIGTERM or SIGINT stops
it (a one-line summary on stderr, exit 0).
"""

import argparse
import hashlib
import hmac
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SIGNATURE_PREFIX = "sha256="


def split_address(text):
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def signature_valid(secret, body, header):
    """Whether `header` is the HMAC-SHA256 of `body` under `secret`, as sha256=<hex>."""
    if header is None or not header.startswith(SIGNATURE_PREFIX):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header[len(SIGNATURE_PREFIX):])


class Log:
    """The requests received, appended to one JSON-lines file."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.count = 0
        self.valid = 0
        # Created empty now, so a reader sees the file before the first request.
        open(path, "w", encoding="utf-8").close()

    def record(self, entry):
        with self.lock:
            with open(self.path, "a", encoding="utf-8") as out:
                out.write(json.dumps(entry, sort_keys=True) + "\n")
                out.flush()
            self.count += 1
            self.valid += 1 if entry["signature_valid"] else 0


def handler(log, secret, signature_header):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            signature = self.headers.get(signature_header)
            valid = signature_valid(secret, body, signature)
            payload, error = None, None
            try:
                payload = json.loads(body)
            except ValueError as exc:
                error = f"body is not JSON: {exc}"
            log.record(
                {
                    "path": self.path,
                    "content_type": self.headers.get("Content-Type"),
                    "signature": signature,
                    "signature_valid": valid,
                    "payload": payload,
                    "error": error,
                }
            )
            status = 400 if error else (200 if valid else 401)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format, *args):
            # Requests are in FILE; keep stderr for errors.
            pass

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--listen", type=split_address, default=("127.0.0.1", 0))
    parser.add_argument("--signature-header", default="X-Causeway-Signature")
    args = parser.parse_args()

    log = Log(args.out)
    server = ThreadingHTTPServer(args.listen, handler(log, args.secret, args.signature_header))
    server.daemon_threads = True
    host, port = server.server_address[:2]

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(json.dumps({"url": f"http://{host}:{port}/hook"}), flush=True)
    server.serve_forever()
    server.server_close()
    print(
        f"webhook_receiver: {log.count} requests, {log.valid} with a valid signature",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
