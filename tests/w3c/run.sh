#!/usr/bin/env bash
# Runs the W3C Trace Context test suite (github.com/w3c/trace-context, test/test.py) against
# causeway-instrumentation's propagation: instrumentation/examples/w3c_service.rs does
# extract -> send span -> inject for every call the harness asks for.
#
# The suite is the W3C's code and is not vendored; CI cannot download it, so this is run by
# hand. The same cases run in CI as table tests (instrumentation/tests/w3c_trace_context.rs).
#
# Usage: tests/w3c/run.sh TRACE_CONTEXT_CHECKOUT [TEST_NAME...]
#   TRACE_CONTEXT_CHECKOUT  a clone of https://github.com/w3c/trace-context
#   TEST_NAME               e.g. TraceContextTest.test_tracestate_duplicated_keys (default: all)
# Environment:
#   W3C_PYTHON    a Python 3 with aiohttp installed (default: python3)
#   STRICT_LEVEL  the suite's strictness (default here: 2, every tracestate check)
#   SPEC_LEVEL    the Trace Context level tested (default here: 1)
#   HARNESS_PORT  the port the harness listens on (default: 7777)
set -euo pipefail

if [ $# -lt 1 ]; then
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
suite=$1
shift
if [ ! -f "$suite/test/test.py" ]; then
    echo "run.sh: $suite/test/test.py not found: pass a clone of https://github.com/w3c/trace-context" >&2
    exit 2
fi
python=${W3C_PYTHON:-python3}
if ! "$python" -c 'import aiohttp' 2>/dev/null; then
    echo "run.sh: $python cannot import aiohttp: install it (pip install aiohttp) or set W3C_PYTHON" >&2
    exit 2
fi

repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
service_bin=$(cargo build --quiet --message-format json -p causeway-instrumentation --example w3c_service |
    "$python" -c '
import json, sys
for line in sys.stdin:
    message = json.loads(line)
    if message.get("reason") == "compiler-artifact" and message["target"]["name"] == "w3c_service":
        print(message["executable"])
')
if [ -z "$service_bin" ]; then
    echo "run.sh: cargo built no w3c_service executable" >&2
    exit 1
fi

log=$(mktemp)
"$service_bin" 127.0.0.1:0 >"$log" 2>&1 &
service=$!
trap 'kill "$service" 2>/dev/null || true; rm -f "$log"' EXIT

url=
for _ in $(seq 1 100); do
    url=$(sed -n 's/^listening on //p' "$log")
    [ -n "$url" ] && break
    if ! kill -0 "$service" 2>/dev/null; then
        echo "run.sh: the test service exited:" >&2
        cat "$log" >&2
        exit 1
    fi
    sleep 0.1
done
if [ -z "$url" ]; then
    echo "run.sh: the test service did not start within 10 s" >&2
    exit 1
fi
echo "test service: $url"

cd "$suite/test"
STRICT_LEVEL=${STRICT_LEVEL:-2} SPEC_LEVEL=${SPEC_LEVEL:-1} "$python" test.py "$url" "$@"
