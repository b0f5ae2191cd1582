"""One stage of an order flow over Kafka, traced only by standard OpenTelemetry packages.

The Kafka client is confluent-kafka, wrapped by opentelemetry-instrumentation-confluent-kafka
(ConfluentKafkaInstrumentor.instrument_producer / instrument_consumer); spans go through the
OpenTelemetry SDK and its OTLP exporter; the standard BaggageSpanProcessor
(opentelemetry-processor-baggage) copies the baggage entry `correlation.id` onto every span
that starts in a context carrying it. Nothing else adds attributes to the instrumentation's
spans: this is the third-party side of causeway's end-to-end tests.

Roles (every option is described by `kafka_chain.py ROLE --help`):

  produce  publish --count orders to --topic, each in its own trace, with the correlation ID
           `<prefix><n>` (default prefix `ord-<run-id>-`) in W3C baggage `correlation.id`
           (and/or in a `correlation-id` header, --correlation-in), key = the correlation ID;
           the orders numbered in --poison carry `"poison": true` in their JSON value
  relay    consume --input-topic as --group, process each message and publish it to
           --output-topic inside the consumer's process span, keeping the correlation ID
  consume  consume --topic as --group: the end of a chain
  chain    orders-service -> orders topic -> billing-service (relay) -> invoices topic ->
           mailer-service (consume), each stage a separate process with its own
           TracerProvider and resource; exits when the mailer has consumed every order that
           was not poison

relay and consume call Consumer.poll(), or Consumer.consume() with --batch (chain --batch
also runs the stages one after the other so that the consumers get whole batches).

A consumer takes a message's correlation ID from baggage `correlation.id`, else from a
`correlation-id` header. The instrumentation does not restore baggage, so the stage extracts
it from the headers with the global propagator and attaches it on top of the
instrumentation's context, as an application would. The relay publishes with the ID in
baggage (other incoming baggage is passed on) and copies an incoming `correlation-id`
header onto the outgoing message.

Poison: processing a message whose JSON value has `"poison": true` raises PoisonOrderError.
The stage catches it where a service's consume loop would, records it on the current span
(the instrumentation's `<topic> process` CONSUMER span, of the whole batch with --batch)
with record_exception() and status ERROR, does NOT publish the message to the output topic, publishes it unchanged to
--dead-letter-topic when one is given (a child of that process span), and moves on: the
offset is committed, there is no redelivery. A poison message is an expected outcome, not a
failure of the run.

Output: one JSON document on stdout (schema in tests/python/README.md). Exit status 0 when
every expected message went through and every span was exported, 1 on any error (export
failure, delivery failure, timeout, a failed stage), 2 on bad arguments.

Producers send one record per batch (linger.ms=0, batch.num.messages=1, a flush after each
send): tansu 0.6 counts batches in its high watermark.
"""

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import traceback

from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from opentelemetry import baggage, context, propagate, trace
from opentelemetry.instrumentation.confluent_kafka import ConfluentKafkaInstrumentor
from opentelemetry.processor.baggage import BaggageSpanProcessor
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode

from checked_exporter import CheckedExporter

LANGUAGE = "python"
TOOL = "kafka_chain.py"
BAGGAGE_KEY = "correlation.id"
CORRELATION_HEADER = "correlation-id"
DEFAULT_SERVICES = ("orders-service", "billing-service", "mailer-service")
FLUSH_TIMEOUT_S = 10.0


class PoisonOrderError(Exception):
    """Raised by the business logic for an order it cannot process."""


class SpanLog(SpanProcessor):
    """Remembers every span this service ended, for the JSON report."""

    def __init__(self):
        self.spans = []

    def on_end(self, span):
        context_ = span.get_span_context()
        self.spans.append(
            {
                "name": span.name,
                "kind": span.kind.name,
                "trace_id": format(context_.trace_id, "032x"),
                "span_id": format(context_.span_id, "016x"),
                "parent_span_id": format(span.parent.span_id, "016x") if span.parent else None,
                "status": span.status.status_code.name,
                "links": [
                    {
                        "trace_id": format(link.context.trace_id, "032x"),
                        "span_id": format(link.context.span_id, "016x"),
                    }
                    for link in span.links
                ],
                "correlation_id": span.attributes.get(BAGGAGE_KEY),
            }
        )


class HeaderGetter(Getter):
    """Reads confluent-kafka headers (a list of (str, bytes) pairs) for the propagator."""

    def get(self, carrier, key):
        values = [
            value.decode("utf-8", "replace") for name, value in carrier or [] if name == key and value is not None
        ]
        return values or None

    def keys(self, carrier):
        return [name for name, _ in carrier or []]


HEADER_GETTER = HeaderGetter()


def header(headers, name):
    values = HEADER_GETTER.get(headers, name)
    return values[0] if values else None


def ids_from_traceparent(value):
    """(trace_id, span_id) in hex from a W3C traceparent value, or (None, None)."""
    parts = (value or "").split("-")
    if len(parts) >= 4 and len(parts[1]) == 32 and len(parts[2]) == 16:
        return parts[1], parts[2]
    return None, None


def make_exporter(protocol, endpoint, timeout):
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=endpoint, insecure=True, timeout=timeout)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint, timeout=timeout)


def ensure_topics(bootstrap, partitions, topics, timeout):
    """Creates the topics that do not exist yet, with `partitions` partitions each."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1) for topic in dict.fromkeys(topics)],
        operation_timeout=min(10.0, timeout),
        request_timeout=min(15.0, timeout),
    )
    for topic, future in futures.items():
        try:
            future.result()
        except Exception as error:  # noqa: BLE001 - a KafkaException carries the error code
            code = error.args[0].code() if error.args and hasattr(error.args[0], "code") else None
            if code != KafkaError.TOPIC_ALREADY_EXISTS:
                raise RuntimeError(f"cannot create topic {topic} on {bootstrap}: {error}") from error


class Stage:
    """One service: its TracerProvider, its Kafka clients and what it did."""

    def __init__(self, args, role):
        self.args = args
        self.started = time.monotonic()
        self.deadline = self.started + args.timeout
        self.errors = []
        self.messages = []
        self.exporter = CheckedExporter(make_exporter(args.otlp_protocol, args.otlp_endpoint, args.otlp_timeout))
        self.span_log = SpanLog()
        self.provider = TracerProvider(resource=Resource.create({"service.name": args.service}))
        self.provider.add_span_processor(BaggageSpanProcessor(lambda key: key == BAGGAGE_KEY))
        self.provider.add_span_processor(self.span_log)
        self.provider.add_span_processor(BatchSpanProcessor(self.exporter, schedule_delay_millis=200))
        self.report = {
            "service": args.service,
            "role": role,
            "language": LANGUAGE,
            "input": None,
            "output": None,
            "dead_letter_topic": None,
            "expected": args.count,
            "batch": getattr(args, "batch", False),
            "messages": self.messages,
        }

    def remaining(self):
        return self.deadline - time.monotonic()

    # Kafka clients ---------------------------------------------------------------------

    def ensure_topics(self, topics):
        ensure_topics(self.args.bootstrap, self.args.partitions, topics, max(1.0, self.remaining()))

    def producer(self):
        producer = Producer(
            {
                "bootstrap.servers": self.args.bootstrap,
                "client.id": self.args.service,
                "linger.ms": 0,
                "batch.num.messages": 1,
                "acks": "all",
            }
        )
        return ConfluentKafkaInstrumentor.instrument_producer(producer, tracer_provider=self.provider)

    def consumer(self, topic, group):
        consumer = Consumer(
            {
                "bootstrap.servers": self.args.bootstrap,
                "client.id": self.args.service,
                "group.id": group,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": True,
                "auto.commit.interval.ms": 200,
            }
        )
        consumer = ConfluentKafkaInstrumentor.instrument_consumer(consumer, tracer_provider=self.provider)
        consumer.subscribe([topic])
        return consumer

    def send(self, producer, topic, key, value, headers):
        """Publishes one record and waits for its delivery report; returns what was produced."""
        delivery = {}

        def on_delivery(error, message):
            delivery["error"] = error
            if message is not None and error is None:
                delivery["partition"] = message.partition()
                delivery["offset"] = message.offset()

        headers = list(headers)
        producer.produce(topic, value=value, key=key, headers=headers, on_delivery=on_delivery)
        # The instrumentation injected the PRODUCER span's context into our header list.
        trace_id, span_id = ids_from_traceparent(header(headers, "traceparent"))
        producer.flush(max(1.0, min(FLUSH_TIMEOUT_S, self.remaining())))
        produced = {
            "topic": topic,
            "partition": delivery.get("partition"),
            "offset": delivery.get("offset"),
            "trace_id": trace_id,
            "span_id": span_id,
        }
        if delivery.get("error") is not None or "offset" not in delivery:
            reason = delivery.get("error") or "no delivery report before the flush timeout"
            self.errors.append(f"{self.args.service}: delivery to {topic} failed for key {key!r}: {reason}")
        return produced

    # Consuming ---------------------------------------------------------------------------

    def consume_loop(self, consumer, handle):
        """Polls until --count messages were handled or the deadline passed.

        Without --batch it calls poll() (one `recv` + one `<topic> process` span per
        message); with --batch it calls consume() (one `recv` + one `<topic> process` span
        with one link per message for each batch) and handles the batch's messages in turn.
        """
        try:
            while len(self.messages) < self.args.count:
                if self.remaining() <= 0:
                    self.errors.append(
                        f"{self.args.service}: timeout after {self.args.timeout}s: "
                        f"handled {len(self.messages)} of {self.args.count} messages"
                    )
                    break
                wait = min(0.5, max(0.05, self.remaining()))
                if self.args.batch:
                    batch = consumer.consume(num_messages=max(1, self.args.count - len(self.messages)), timeout=wait)
                else:
                    message = consumer.poll(wait)
                    batch = [] if message is None else [message]
                for message in batch:
                    if message.error():
                        if message.error().code() not in (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART):
                            print(f"{self.args.service}: consumer error: {message.error()}", file=sys.stderr)
                        continue
                    handle(message)
        finally:
            # close() ends the instrumentation's last open process span and commits offsets.
            consumer.close()

    def received(self, message):
        """What a consumed message carried, and the correlation context to process it in.

        Returns (entry, token): the message's report entry and the token of the context
        attached for its processing (the instrumentation's process span is current; the
        incoming baggage, plus correlation.id from the header when baggage lacks it, is
        added on top of it).
        """
        headers = message.headers() or []
        incoming = baggage.get_all(propagate.extract(headers, getter=HEADER_GETTER))
        correlation_id, source = incoming.get(BAGGAGE_KEY), "baggage"
        if correlation_id is None:
            correlation_id, source = header(headers, CORRELATION_HEADER), "header"
        if correlation_id is None:
            source = None
        # The span the instrumentation made current for this message: `<topic> process`.
        handler_span = trace.get_current_span().get_span_context()
        upstream_trace, upstream_span = ids_from_traceparent(header(headers, "traceparent"))
        try:
            order = json.loads(message.value() or b"null")
        except ValueError:
            order = None
        entry = {
            "correlation_id": correlation_id,
            "correlation_source": source,
            "key": message.key().decode("utf-8", "replace") if message.key() is not None else None,
            "poison": isinstance(order, dict) and order.get("poison") is True,
            "consumed": {
                "topic": message.topic(),
                "partition": message.partition(),
                "offset": message.offset(),
                "upstream_trace_id": upstream_trace,
                "upstream_span_id": upstream_span,
                "handler_trace_id": format(handler_span.trace_id, "032x") if handler_span.is_valid else None,
                "handler_span_id": format(handler_span.span_id, "016x") if handler_span.is_valid else None,
            },
            "outcome": None,
            "error": None,
            "produced": None,
            # Internal: the incoming correlation-id header, copied onto what this stage publishes.
            "forward_header": header(headers, CORRELATION_HEADER),
        }
        processing = context.get_current()
        for key, value in incoming.items():
            processing = baggage.set_baggage(key, value, processing)
        if source == "header":
            processing = baggage.set_baggage(BAGGAGE_KEY, correlation_id, processing)
        return entry, order, context.attach(processing)

    def process(self, entry, order):
        """The business logic of every consuming stage: poison orders cannot be processed."""
        if entry["poison"]:
            raise PoisonOrderError(f"{self.args.service} cannot process poison order {entry['correlation_id']}")
        return order

    def fail(self, entry, error, producer, message, headers):
        """Records a processing error on the current (process) span; dead-letters if asked."""
        span = trace.get_current_span()
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, str(error)))
        entry["outcome"] = "failed"
        entry["error"] = str(error)
        if producer is not None and self.args.dead_letter_topic:
            entry["produced"] = self.send(
                producer, self.args.dead_letter_topic, message.key(), message.value(), headers
            )
            entry["outcome"] = "dead-lettered"

    # Finishing ---------------------------------------------------------------------------

    def finish(self):
        """Exports every span, then returns this stage's report and errors."""
        flushed = self.provider.force_flush(int(FLUSH_TIMEOUT_S * 1000 + self.args.otlp_timeout * 1000))
        self.provider.shutdown()
        if not flushed:
            self.errors.append(f"{self.args.service}: spans were not all exported before the flush timeout")
        if self.exporter.failures:
            self.errors.append(
                f"{self.args.service}: {self.exporter.failures} OTLP exports to {self.args.otlp_endpoint} failed"
            )
        for entry in self.messages:
            entry.pop("forward_header", None)
        self.report.update(
            {
                "spans": self.span_log.spans,
                "spans_exported": self.exporter.exported,
                "export_failures": self.exporter.failures,
                "elapsed_ms": round((time.monotonic() - self.started) * 1000),
                "errors": list(self.errors),
            }
        )
        return self.report


# Roles -----------------------------------------------------------------------------------


def run_produce(args):
    stage = Stage(args, "produce")
    stage.report["output"] = {"topic": args.topic}
    stage.ensure_topics([args.topic])
    producer = stage.producer()
    prefix = args.correlation_prefix if args.correlation_prefix is not None else f"ord-{args.run_id}-"
    poison = set(args.poison)
    for number in range(1, args.count + 1):
        if stage.remaining() <= 0:
            stage.errors.append(f"{args.service}: timeout after {args.timeout}s: produced {number - 1} of {args.count}")
            break
        correlation_id = f"{prefix}{number}"
        order = {
            "order": number,
            "correlation_id": correlation_id,
            "poison": number in poison,
            "run_id": args.run_id,
            "path": [args.service],
        }
        headers = []
        if args.correlation_in in ("header", "both"):
            headers.append((CORRELATION_HEADER, correlation_id.encode()))
        sending = context.get_current()
        if args.correlation_in in ("baggage", "both"):
            sending = baggage.set_baggage(BAGGAGE_KEY, correlation_id, sending)
        token = context.attach(sending)
        try:
            produced = stage.send(producer, args.topic, correlation_id.encode(), json.dumps(order).encode(), headers)
        finally:
            context.detach(token)
        stage.messages.append(
            {
                "correlation_id": correlation_id,
                "correlation_source": args.correlation_in,
                "key": correlation_id,
                "poison": number in poison,
                "consumed": None,
                "outcome": "produced",
                "error": None,
                "produced": produced,
            }
        )
    return [stage.finish()]


def run_relay(args):
    stage = Stage(args, "relay")
    stage.report["input"] = {"topic": args.input_topic, "group": args.group}
    stage.report["output"] = {"topic": args.output_topic}
    stage.report["dead_letter_topic"] = args.dead_letter_topic
    topics = [args.input_topic, args.output_topic] + ([args.dead_letter_topic] if args.dead_letter_topic else [])
    stage.ensure_topics(topics)
    producer = stage.producer()
    consumer = stage.consumer(args.input_topic, args.group)

    def handle(message):
        entry, order, token = stage.received(message)
        stage.messages.append(entry)
        forwarded = []
        if entry["forward_header"] is not None:
            forwarded.append((CORRELATION_HEADER, entry["forward_header"].encode()))
        try:
            try:
                order = stage.process(entry, order)
            except PoisonOrderError as error:
                stage.fail(entry, error, producer, message, forwarded)
                return
            if isinstance(order, dict):
                order = dict(order, path=list(order.get("path", [])) + [args.service])
                value = json.dumps(order).encode()
            else:
                value = message.value()
            entry["produced"] = stage.send(producer, args.output_topic, message.key(), value, forwarded)
            entry["outcome"] = "relayed"
        finally:
            context.detach(token)

    stage.consume_loop(consumer, handle)
    return [stage.finish()]


def run_consume(args):
    stage = Stage(args, "consume")
    stage.report["input"] = {"topic": args.topic, "group": args.group}
    stage.report["dead_letter_topic"] = args.dead_letter_topic
    stage.ensure_topics([args.topic] + ([args.dead_letter_topic] if args.dead_letter_topic else []))
    producer = stage.producer() if args.dead_letter_topic else None
    consumer = stage.consumer(args.topic, args.group)

    def handle(message):
        entry, order, token = stage.received(message)
        stage.messages.append(entry)
        forwarded = []
        if entry["forward_header"] is not None:
            forwarded.append((CORRELATION_HEADER, entry["forward_header"].encode()))
        try:
            stage.process(entry, order)
            entry["outcome"] = "consumed"
        except PoisonOrderError as error:
            stage.fail(entry, error, producer, message, forwarded)
        finally:
            context.detach(token)

    stage.consume_loop(consumer, handle)
    return [stage.finish()]


def run_chain(args):
    """Runs the three stages as three processes of this script and merges their reports."""
    started = time.monotonic()
    orders_service, billing_service, mailer_service = args.services
    poison = sorted(set(number for number in args.poison if 1 <= number <= args.count))
    common = [
        "--bootstrap", args.bootstrap,
        "--otlp-protocol", args.otlp_protocol,
        "--otlp-endpoint", args.otlp_endpoint,
        "--otlp-timeout", str(args.otlp_timeout),
        "--run-id", args.run_id,
        "--partitions", str(args.partitions),
    ]  # fmt: skip
    dead_letter = ["--dead-letter-topic", args.dead_letter_topic] if args.dead_letter_topic else []
    batch = ["--batch"] if args.batch else []
    stages = [
        ["consume", *common, "--service", mailer_service, "--topic", args.invoices_topic,
         "--group", args.mailer_group, "--count", str(args.count - len(poison)), *batch],
        ["relay", *common, "--service", billing_service, "--input-topic", args.orders_topic,
         "--group", args.billing_group, "--output-topic", args.invoices_topic,
         "--count", str(args.count), *dead_letter, *batch],
        ["produce", *common, "--service", orders_service, "--topic", args.orders_topic,
         "--count", str(args.count), "--correlation-in", args.correlation_in,
         *(["--poison", ",".join(map(str, poison))] if poison else []),
         *(["--correlation-prefix", args.correlation_prefix] if args.correlation_prefix is not None else [])],
    ]  # fmt: skip
    # Create every topic first so that the consumers' subscriptions find them.
    ensure_topics(
        args.bootstrap,
        args.partitions,
        [args.orders_topic, args.invoices_topic] + ([args.dead_letter_topic] if args.dead_letter_topic else []),
        args.timeout,
    )
    reports, errors = [], []
    grace = FLUSH_TIMEOUT_S + 2 * args.otlp_timeout + 15

    live = []

    def stop(signum, _frame):
        # Killed from outside (a test that gave up): take the stages down too.
        for child in live:
            child.kill()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def start(stage):
        # Each stage gets what is left of the chain's --timeout.
        remaining = max(1.0, args.timeout - (time.monotonic() - started))
        command = [sys.executable, os.path.abspath(__file__), *stage, "--timeout", f"{remaining:.1f}"]
        child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        live.append(child)
        return child

    def collect(stage, child):
        try:
            out, _ = child.communicate(timeout=max(1.0, args.timeout + grace - (time.monotonic() - started)))
        except subprocess.TimeoutExpired:
            child.kill()
            out, _ = child.communicate()
            errors.append(f"the {stage[0]} stage did not exit in time and was killed")
        try:
            document = json.loads(out)
        except ValueError:
            errors.append(f"the {stage[0]} stage printed no JSON (exit {child.returncode})")
            return
        reports.extend(document["services"])
        errors.extend(document["errors"])
        if child.returncode != 0 and not document["errors"]:
            errors.append(f"the {stage[0]} stage exited {child.returncode}")

    if args.batch:
        # One stage after the other, so that each consumer finds all its messages waiting
        # and takes them in as few batches as the client fetches.
        for stage in reversed(stages):
            collect(stage, start(stage))
    else:
        # All at once: consumers first, so they are joining their groups while orders flow.
        children = [start(stage) for stage in stages]
        for stage, child in zip(stages, children, strict=True):
            collect(stage, child)
    # Report the stages in flow order: producer first.
    reports.sort(key=lambda report: ["produce", "relay", "consume"].index(report["role"]))
    return reports, errors, started


# Command line ------------------------------------------------------------------------------


def number_list(text):
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected order numbers like 2,5, got {text!r}") from None


def service_list(text):
    names = [part.strip() for part in text.split(",")]
    if len(names) != 3 or not all(names):
        raise argparse.ArgumentTypeError(f"expected three service names, got {text!r}")
    return names


def parse_args(argv):
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers, HOST:PORT")
    common.add_argument("--otlp-protocol", choices=("grpc", "http"), default="http", help="default http (protobuf)")
    common.add_argument(
        "--otlp-endpoint",
        required=True,
        help="http: the full URL, http://HOST:PORT/v1/traces; grpc: http://HOST:PORT",
    )
    common.add_argument("--otlp-timeout", type=float, default=10.0, help="seconds per OTLP export (default 10)")
    common.add_argument("--run-id", default=secrets.token_hex(3), help="names this run (default: 6 random hex digits)")
    common.add_argument("--timeout", type=float, default=60.0, help="seconds before giving up (default 60)")
    common.add_argument("--partitions", type=int, default=1, help="partitions of topics this creates (default 1)")

    parser = argparse.ArgumentParser(
        prog=TOOL, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    roles = parser.add_subparsers(dest="role", required=True)

    produce = roles.add_parser("produce", parents=[common], help="publish orders")
    produce.add_argument("--topic", default="orders")
    produce.add_argument("--service", default=DEFAULT_SERVICES[0])
    produce.add_argument("--count", type=int, default=3, help="orders to publish (default 3)")
    produce.add_argument(
        "--poison", type=number_list, default=[], help="1-based order numbers to make poison, e.g. 2,5"
    )
    produce.add_argument("--correlation-in", choices=("baggage", "header", "both"), default="baggage")
    produce.add_argument(
        "--correlation-prefix", default=None, help="correlation IDs are PREFIX<n> (default ord-<run-id>-)"
    )

    relay = roles.add_parser("relay", parents=[common], help="consume one topic, publish to another")
    relay.add_argument("--input-topic", default="orders")
    relay.add_argument("--group", default="billing")
    relay.add_argument("--output-topic", default="invoices")
    relay.add_argument("--service", default=DEFAULT_SERVICES[1])
    relay.add_argument("--count", type=int, default=3, help="messages to consume before exiting (default 3)")
    relay.add_argument("--dead-letter-topic", default=None, help="where poison messages go (default: dropped)")
    relay.add_argument("--batch", action="store_true", help="consume with Consumer.consume() instead of poll()")

    consume = roles.add_parser("consume", parents=[common], help="consume: the end of a chain")
    consume.add_argument("--topic", default="invoices")
    consume.add_argument("--group", default="mailer")
    consume.add_argument("--service", default=DEFAULT_SERVICES[2])
    consume.add_argument("--count", type=int, default=3, help="messages to consume before exiting (default 3)")
    consume.add_argument("--dead-letter-topic", default=None, help="where poison messages go (default: dropped)")
    consume.add_argument("--batch", action="store_true", help="consume with Consumer.consume() instead of poll()")

    chain = roles.add_parser("chain", parents=[common], help="orders -> billing -> mailer, three processes")
    chain.add_argument("--count", type=int, default=3, help="orders to publish (default 3)")
    chain.add_argument("--poison", type=number_list, default=[], help="1-based order numbers to make poison, e.g. 2")
    chain.add_argument("--correlation-in", choices=("baggage", "header", "both"), default="baggage")
    chain.add_argument("--correlation-prefix", default=None)
    chain.add_argument("--orders-topic", default="orders")
    chain.add_argument("--invoices-topic", default="invoices")
    chain.add_argument("--billing-group", default="billing")
    chain.add_argument("--mailer-group", default="mailer")
    chain.add_argument("--dead-letter-topic", default=None, help="where billing sends poison orders (default: dropped)")
    chain.add_argument("--batch", action="store_true", help="billing and mailer consume in batches")
    chain.add_argument(
        "--services",
        type=service_list,
        default=list(DEFAULT_SERVICES),
        help="the three service names, comma-separated (default orders-service,billing-service,mailer-service)",
    )
    args = parser.parse_args(argv)
    if args.count < 0 or args.timeout <= 0 or args.partitions < 1:
        parser.error("--count must be >= 0, --timeout > 0 and --partitions >= 1")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    started = time.monotonic()
    try:
        if args.role == "chain":
            services, errors, started = run_chain(args)
        else:
            services = {"produce": run_produce, "relay": run_relay, "consume": run_consume}[args.role](args)
            errors = [error for service in services for error in service["errors"]]
    except Exception as error:  # noqa: BLE001 - a broker that cannot be reached: still one report
        traceback.print_exc()
        services, errors = [], [f"{args.role}: {error}"]
    correlation_ids = []
    for service in services:
        for entry in service["messages"]:
            if entry["correlation_id"] is not None and entry["correlation_id"] not in correlation_ids:
                correlation_ids.append(entry["correlation_id"])
    document = {
        "tool": TOOL,
        "language": LANGUAGE,
        "role": args.role,
        "run_id": args.run_id,
        "bootstrap": args.bootstrap,
        "otlp": {"protocol": args.otlp_protocol, "endpoint": args.otlp_endpoint},
        "ok": not errors,
        "errors": errors,
        "elapsed_ms": round((time.monotonic() - started) * 1000),
        "correlation_ids": correlation_ids,
        "services": services,
    }
    print(json.dumps(document), flush=True)
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
