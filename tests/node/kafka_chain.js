#!/usr/bin/env node
'use strict';
/*
 * One stage of an order flow over Kafka, traced only by standard OpenTelemetry packages.
 *
 * The Kafka client is kafkajs, instrumented by @opentelemetry/instrumentation-kafkajs
 * (registered before kafkajs is loaded); spans go through the Node SDK
 * (@opentelemetry/sdk-trace-node, W3C trace context + baggage propagators) and an OTLP
 * exporter (@opentelemetry/exporter-trace-otlp-proto over HTTP, or -grpc); the standard
 * BaggageSpanProcessor (@opentelemetry/baggage-span-processor) copies the baggage entry
 * `correlation.id` onto every span that starts in a context carrying it. Nothing else adds
 * attributes to the instrumentation's spans.
 *
 * The command line, the JSON report and the poison semantics are the same as
 * tests/python/kafka_chain.py; tests/python/README.md documents both.
 *
 *   node kafka_chain.js produce|relay|consume|chain --bootstrap HOST:PORT --otlp-endpoint URL [...]
 *   node kafka_chain.js --help
 *
 * Roles:
 *   produce  publish --count orders to --topic, each in its own trace, correlation ID
 *            `<prefix><n>` (default `ord-<run-id>-`) in baggage `correlation.id` and/or a
 *            `correlation-id` header (--correlation-in), key = the correlation ID
 *   relay    consume --input-topic as --group (eachMessage), publish each message to
 *            --output-topic from inside the handler, keeping the correlation ID
 *   consume  consume --topic as --group: the end of a chain
 *   chain    orders-service -> orders -> billing-service -> invoices -> mailer-service,
 *            three processes of this script, each with its own TracerProvider and resource
 *
 * relay and consume use eachMessage, or eachBatch with --batch (chain --batch also runs the
 * stages one after the other so that the consumers get whole batches).
 *
 * A consumer takes the correlation ID from baggage `correlation.id` (an eachMessage handler
 * runs in the context extracted from the message, baggage included; an eachBatch handler
 * extracts it from the headers), else from a `correlation-id` header; the relay re-publishes
 * with it in baggage and copies an incoming `correlation-id` header onto the output.
 *
 * Poison (`"poison": true` in the JSON value): the handler raises PoisonOrderError, catches
 * it, records it on the active span (the instrumentation's `process <topic>` span, or the
 * batch's `poll <topic>` span with --batch) with recordException() and status ERROR, does
 * not publish to the output topic, publishes to --dead-letter-topic when given, and returns
 * normally so kafkajs commits the offset: no redelivery.
 *
 * Output: one JSON document on stdout. Exit 0 when every expected message went through and
 * every span was exported, 1 on any error, 2 on bad arguments. kafkajs logs go to stderr.
 */

const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const { parseArgs } = require('node:util');

const api = require('@opentelemetry/api');
const { BaggageSpanProcessor } = require('@opentelemetry/baggage-span-processor');
const { ExportResultCode } = require('@opentelemetry/core');
const { registerInstrumentations } = require('@opentelemetry/instrumentation');
const { KafkaJsInstrumentation } = require('@opentelemetry/instrumentation-kafkajs');
const { defaultResource, resourceFromAttributes } = require('@opentelemetry/resources');
const { BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { NodeTracerProvider } = require('@opentelemetry/sdk-trace-node');

const LANGUAGE = 'node';
const TOOL = 'kafka_chain.js';
const BAGGAGE_KEY = 'correlation.id';
const CORRELATION_HEADER = 'correlation-id';
const DEFAULT_SERVICES = ['orders-service', 'billing-service', 'mailer-service'];
const FLUSH_TIMEOUT_MS = 10000;
const KIND_NAMES = ['INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER'];
const STATUS_NAMES = ['UNSET', 'OK', 'ERROR'];

class PoisonOrderError extends Error {
  constructor(message) {
    super(message);
    this.name = 'PoisonOrderError';
  }
}

class UsageError extends Error {}

/** Passes spans to the OTLP exporter and counts the exports that did not succeed. */
class CheckedExporter {
  constructor(inner) {
    this.inner = inner;
    this.failures = 0;
    this.exported = 0;
    this.lastError = null;
  }

  export(spans, resultCallback) {
    this.inner.export(spans, result => {
      if (result.code === ExportResultCode.SUCCESS) {
        this.exported += spans.length;
      } else {
        this.failures += 1;
        this.lastError = result.error ? String(result.error.message || result.error) : 'failed';
      }
      resultCallback(result);
    });
  }

  shutdown() {
    return this.inner.shutdown();
  }

  forceFlush() {
    return this.inner.forceFlush ? this.inner.forceFlush() : Promise.resolve();
  }
}

/** Remembers every span this service ended, for the JSON report. */
class SpanLog {
  constructor() {
    this.spans = [];
  }

  onStart() {}

  onEnd(span) {
    const context = span.spanContext();
    const attribute = span.attributes[BAGGAGE_KEY];
    this.spans.push({
      name: span.name,
      kind: KIND_NAMES[span.kind] || String(span.kind),
      trace_id: context.traceId,
      span_id: context.spanId,
      parent_span_id: span.parentSpanContext ? span.parentSpanContext.spanId : null,
      status: STATUS_NAMES[span.status.code] || String(span.status.code),
      links: span.links.map(link => ({ trace_id: link.context.traceId, span_id: link.context.spanId })),
      correlation_id: attribute === undefined ? null : attribute,
    });
  }

  forceFlush() {
    return Promise.resolve();
  }

  shutdown() {
    return Promise.resolve();
  }
}

function makeExporter(protocol, endpoint, timeoutMillis) {
  if (protocol === 'grpc') {
    const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-grpc');
    return new OTLPTraceExporter({ url: endpoint, timeoutMillis });
  }
  const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-proto');
  return new OTLPTraceExporter({ url: endpoint, timeoutMillis });
}

/** (trace_id, span_id) from a W3C traceparent value, or nulls. */
function idsFromTraceparent(value) {
  const parts = String(value || '').split('-');
  if (parts.length >= 4 && parts[1].length === 32 && parts[2].length === 16) {
    return { traceId: parts[1], spanId: parts[2] };
  }
  return { traceId: null, spanId: null };
}

function headerText(headers, name) {
  if (!headers) return null;
  for (const key of Object.keys(headers)) {
    if (key.toLowerCase() === name) {
      const value = headers[key];
      if (value === undefined || value === null) return null;
      return (Array.isArray(value) ? value[0] : value).toString();
    }
  }
  return null;
}

/** Reads kafkajs headers (Buffer or string values) for the propagators. */
const HEADER_GETTER = {
  get(carrier, key) {
    const value = headerText(carrier, key);
    return value === null ? undefined : value;
  },
  keys(carrier) {
    return carrier ? Object.keys(carrier) : [];
  },
};

/** Logs kafkajs' messages as JSON lines on stderr: stdout carries only the report. */
function stderrLogCreator() {
  return ({ namespace, label, log }) => {
    const { message, ...extra } = log;
    process.stderr.write(`${JSON.stringify({ level: label, namespace, message, ...extra })}\n`);
  };
}

/** One service: its TracerProvider, its Kafka client and what it did. */
class Stage {
  constructor(args, role) {
    this.args = args;
    this.started = Date.now();
    this.deadline = this.started + args.timeout * 1000;
    this.errors = [];
    this.messages = [];
    this.exporter = new CheckedExporter(makeExporter(args.otlpProtocol, args.otlpEndpoint, args.otlpTimeout * 1000));
    this.spanLog = new SpanLog();
    this.provider = new NodeTracerProvider({
      // The SDK's default resource (telemetry.sdk.*) with this service's name.
      resource: defaultResource().merge(resourceFromAttributes({ 'service.name': args.service })),
      spanProcessors: [
        new BaggageSpanProcessor(key => key === BAGGAGE_KEY),
        this.spanLog,
        new BatchSpanProcessor(this.exporter, { scheduledDelayMillis: 200 }),
      ],
    });
    // Global context manager (AsyncLocalStorage) and propagators (W3C trace context + baggage).
    this.provider.register();
    registerInstrumentations({ instrumentations: [new KafkaJsInstrumentation()], tracerProvider: this.provider });
    // kafkajs must be loaded after the instrumentation is registered.
    const { Kafka, Partitioners, logLevel } = require('kafkajs');
    this.Partitioners = Partitioners;
    this.kafka = new Kafka({
      clientId: args.service,
      brokers: [args.bootstrap],
      logLevel: logLevel.WARN,
      logCreator: stderrLogCreator,
      connectionTimeout: 3000,
      retry: { initialRetryTime: 200, retries: 5 },
    });
    this.report = {
      service: args.service,
      role,
      language: LANGUAGE,
      input: null,
      output: null,
      dead_letter_topic: null,
      expected: args.count,
      batch: Boolean(args.batch),
      messages: this.messages,
    };
  }

  remainingMs() {
    return this.deadline - Date.now();
  }

  async ensureTopics(topics) {
    await ensureTopics(this.kafka, this.args.partitions, topics);
  }

  async producer() {
    const producer = this.kafka.producer({ allowAutoTopicCreation: true, createPartitioner: this.Partitioners.DefaultPartitioner });
    await producer.connect();
    return producer;
  }

  /** Publishes one record (one record per batch) and returns what was produced. */
  async send(producer, topic, key, value, headers) {
    const message = { key, value, headers: { ...headers } };
    const produced = { topic, partition: null, offset: null, trace_id: null, span_id: null };
    try {
      const sending = producer.send({ topic, messages: [message], acks: -1 });
      // The instrumentation injected the PRODUCER span's context into message.headers.
      const ids = idsFromTraceparent(headerText(message.headers, 'traceparent'));
      produced.trace_id = ids.traceId;
      produced.span_id = ids.spanId;
      const [metadata] = await sending;
      produced.partition = metadata.partition;
      produced.offset = Number(metadata.baseOffset);
    } catch (error) {
      this.errors.push(`${this.args.service}: delivery to ${topic} failed for key ${JSON.stringify(String(key))}: ${error.message}`);
    }
    return produced;
  }

  /** Consumes `topic` as `group` until --count messages were handled or the deadline passed. */
  async consumeLoop(topic, group, handle) {
    // maxWaitTimeInMs: tansu 0.6 holds a fetch for about half of kafkajs' default 5 s wait
    // even when records are waiting; 500 ms keeps a hop well under a second.
    const consumer = this.kafka.consumer({ groupId: group, allowAutoTopicCreation: true, maxWaitTimeInMs: 500 });
    let finish;
    const finished = new Promise(resolve => {
      finish = resolve;
    });
    consumer.on(consumer.events.CRASH, event => {
      const { error, restart } = event.payload;
      this.errors.push(`${this.args.service}: consumer crashed${restart ? ' (restarting)' : ''}: ${error && error.message}`);
      if (!restart) finish();
    });
    const timer = setTimeout(() => {
      this.errors.push(
        `${this.args.service}: timeout after ${this.args.timeout}s: handled ${this.messages.length} of ${this.args.count} messages`,
      );
      finish();
    }, Math.max(0, this.remainingMs()));
    if (this.args.count === 0) finish();
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    if (this.args.batch) {
      // eachBatch: the instrumentation wraps the handler in a `poll <topic>` CLIENT span and
      // starts one `process <topic>` span per message that the handler cannot reach.
      await consumer.run({
        eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
          for (const message of batch.messages) {
            if (this.messages.length >= this.args.count) break;
            await handle({ topic: batch.topic, partition: batch.partition, message });
            resolveOffset(message.offset);
            await heartbeat();
          }
          if (this.messages.length >= this.args.count) finish();
        },
      });
    } else {
      // eachMessage: the handler runs inside the message's `process <topic>` CONSUMER span.
      await consumer.run({
        eachMessage: async payload => {
          if (this.messages.length >= this.args.count) return;
          await handle(payload);
          if (this.messages.length >= this.args.count) finish();
        },
      });
    }
    await finished;
    clearTimeout(timer);
    // disconnect() waits for the running handler and commits the resolved offsets.
    await consumer.disconnect();
  }

  /** What a consumed message carried, read inside the instrumentation's process span. */
  received({ topic, partition, message }) {
    const active = api.context.active();
    // eachMessage runs in the context extracted from the message, baggage included; an
    // eachBatch handler runs in the poll span's context and reads the baggage from the headers.
    const incoming =
      api.propagation.getBaggage(active) ||
      api.propagation.getBaggage(api.propagation.extract(api.ROOT_CONTEXT, message.headers || {}, HEADER_GETTER));
    const entryValue = incoming && incoming.getEntry(BAGGAGE_KEY);
    let correlationId = entryValue ? entryValue.value : null;
    let source = correlationId === null ? null : 'baggage';
    if (correlationId === null) {
      correlationId = headerText(message.headers, CORRELATION_HEADER);
      if (correlationId !== null) source = 'header';
    }
    // The span active while the handler runs: `process <topic>` (eachMessage) or `poll <topic>` (eachBatch).
    const handlerSpan = api.trace.getActiveSpan();
    const handlerContext = handlerSpan ? handlerSpan.spanContext() : null;
    const upstream = idsFromTraceparent(headerText(message.headers, 'traceparent'));
    let order = null;
    try {
      order = message.value ? JSON.parse(message.value.toString()) : null;
    } catch {
      order = null;
    }
    const entry = {
      correlation_id: correlationId,
      correlation_source: source,
      key: message.key === null || message.key === undefined ? null : message.key.toString(),
      poison: order !== null && typeof order === 'object' && order.poison === true,
      consumed: {
        topic,
        partition,
        offset: Number(message.offset),
        upstream_trace_id: upstream.traceId,
        upstream_span_id: upstream.spanId,
        handler_trace_id: handlerContext ? handlerContext.traceId : null,
        handler_span_id: handlerContext ? handlerContext.spanId : null,
      },
      outcome: null,
      error: null,
      produced: null,
    };
    // The context to publish in: the handler's (process span + incoming baggage), with
    // correlation.id added from the header when baggage lacked it.
    let publishing = incoming ? api.propagation.setBaggage(active, incoming) : active;
    if (source === 'header') {
      const bag = incoming || api.propagation.createBaggage();
      publishing = api.propagation.setBaggage(active, bag.setEntry(BAGGAGE_KEY, { value: correlationId }));
    }
    // An incoming correlation-id header is copied onto whatever this stage publishes.
    const headerValue = headerText(message.headers, CORRELATION_HEADER);
    const forwarded = headerValue !== null ? { [CORRELATION_HEADER]: headerValue } : {};
    return { entry, order, publishing, forwarded };
  }

  /** The business logic of every consuming stage: poison orders cannot be processed. */
  process(entry, order) {
    if (entry.poison) {
      throw new PoisonOrderError(`${this.args.service} cannot process poison order ${entry.correlation_id}`);
    }
    return order;
  }

  /** Records a processing error on the active (process) span; dead-letters if asked. */
  async fail(entry, error, producer, message, publishing, forwarded) {
    const span = api.trace.getActiveSpan();
    if (span) {
      span.recordException(error);
      span.setStatus({ code: api.SpanStatusCode.ERROR, message: error.message });
    }
    entry.outcome = 'failed';
    entry.error = error.message;
    if (producer && this.args.deadLetterTopic) {
      entry.produced = await api.context.with(publishing, () =>
        this.send(producer, this.args.deadLetterTopic, message.key, message.value, forwarded),
      );
      entry.outcome = 'dead-lettered';
    }
  }

  async finish() {
    let flushed = true;
    const flushing = this.provider.forceFlush().then(() => this.provider.shutdown());
    const limit = FLUSH_TIMEOUT_MS + 2 * this.args.otlpTimeout * 1000;
    let limitTimer;
    const timedOut = new Promise(resolve => {
      limitTimer = setTimeout(() => {
        flushed = false;
        resolve();
      }, limit);
    });
    await Promise.race([flushing.catch(() => undefined), timedOut]);
    clearTimeout(limitTimer);
    if (!flushed) this.errors.push(`${this.args.service}: spans were not all exported before the flush timeout`);
    if (this.exporter.failures) {
      this.errors.push(
        `${this.args.service}: ${this.exporter.failures} OTLP exports to ${this.args.otlpEndpoint} failed: ${this.exporter.lastError}`,
      );
    }
    Object.assign(this.report, {
      spans: this.spanLog.spans,
      spans_exported: this.exporter.exported,
      export_failures: this.exporter.failures,
      elapsed_ms: Date.now() - this.started,
      errors: [...this.errors],
    });
    return this.report;
  }
}

/** Creates the topics that do not exist yet, with `partitions` partitions each. */
async function ensureTopics(kafka, partitions, topics) {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const missing = [...new Set(topics)].filter(topic => !existing.has(topic));
    if (missing.length === 0) return;
    await admin.createTopics({
      topics: missing.map(topic => ({ topic, numPartitions: partitions, replicationFactor: 1 })),
      waitForLeaders: true,
    });
  } catch (error) {
    // Another stage created it between the listing and the creation: that is what we wanted.
    if (error.type !== 'TOPIC_ALREADY_EXISTS' && !String(error.message).includes('already exists')) throw error;
  } finally {
    await admin.disconnect();
  }
}

// Roles ---------------------------------------------------------------------------------

async function runProduce(args) {
  const stage = new Stage(args, 'produce');
  stage.report.output = { topic: args.topic };
  await stage.ensureTopics([args.topic]);
  const producer = await stage.producer();
  const prefix = args.correlationPrefix !== undefined ? args.correlationPrefix : `ord-${args.runId}-`;
  const poison = new Set(args.poison);
  for (let number = 1; number <= args.count; number += 1) {
    if (stage.remainingMs() <= 0) {
      stage.errors.push(`${args.service}: timeout after ${args.timeout}s: produced ${number - 1} of ${args.count}`);
      break;
    }
    const correlationId = `${prefix}${number}`;
    const order = { order: number, correlation_id: correlationId, poison: poison.has(number), run_id: args.runId, path: [args.service] };
    const headers = {};
    if (args.correlationIn === 'header' || args.correlationIn === 'both') headers[CORRELATION_HEADER] = correlationId;
    let sending = api.context.active();
    if (args.correlationIn === 'baggage' || args.correlationIn === 'both') {
      sending = api.propagation.setBaggage(sending, api.propagation.createBaggage({ [BAGGAGE_KEY]: { value: correlationId } }));
    }
    const produced = await api.context.with(sending, () =>
      stage.send(producer, args.topic, correlationId, JSON.stringify(order), headers),
    );
    stage.messages.push({
      correlation_id: correlationId,
      correlation_source: args.correlationIn,
      key: correlationId,
      poison: poison.has(number),
      consumed: null,
      outcome: 'produced',
      error: null,
      produced,
    });
  }
  await producer.disconnect();
  return [await stage.finish()];
}

async function runRelay(args) {
  const stage = new Stage(args, 'relay');
  stage.report.input = { topic: args.inputTopic, group: args.group };
  stage.report.output = { topic: args.outputTopic };
  stage.report.dead_letter_topic = args.deadLetterTopic || null;
  await stage.ensureTopics([args.inputTopic, args.outputTopic, ...(args.deadLetterTopic ? [args.deadLetterTopic] : [])]);
  const producer = await stage.producer();
  await stage.consumeLoop(args.inputTopic, args.group, async payload => {
    const { entry, order, publishing, forwarded } = stage.received(payload);
    stage.messages.push(entry);
    let processed;
    try {
      processed = stage.process(entry, order);
    } catch (error) {
      if (!(error instanceof PoisonOrderError)) throw error;
      await stage.fail(entry, error, producer, payload.message, publishing, forwarded);
      return;
    }
    const value =
      processed !== null && typeof processed === 'object'
        ? JSON.stringify({ ...processed, path: [...(processed.path || []), args.service] })
        : payload.message.value;
    entry.produced = await api.context.with(publishing, () =>
      stage.send(producer, args.outputTopic, payload.message.key, value, forwarded),
    );
    entry.outcome = 'relayed';
  });
  await producer.disconnect();
  return [await stage.finish()];
}

async function runConsume(args) {
  const stage = new Stage(args, 'consume');
  stage.report.input = { topic: args.topic, group: args.group };
  stage.report.dead_letter_topic = args.deadLetterTopic || null;
  await stage.ensureTopics([args.topic, ...(args.deadLetterTopic ? [args.deadLetterTopic] : [])]);
  const producer = args.deadLetterTopic ? await stage.producer() : null;
  await stage.consumeLoop(args.topic, args.group, async payload => {
    const { entry, order, publishing, forwarded } = stage.received(payload);
    stage.messages.push(entry);
    try {
      stage.process(entry, order);
      entry.outcome = 'consumed';
    } catch (error) {
      if (!(error instanceof PoisonOrderError)) throw error;
      await stage.fail(entry, error, producer, payload.message, publishing, forwarded);
    }
  });
  if (producer) await producer.disconnect();
  return [await stage.finish()];
}

function startChild(argv) {
  const child = spawn(process.execPath, [__filename, ...argv], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', chunk => {
    out += chunk;
  });
  const done = new Promise(resolve => {
    child.on('close', (code, signal) => resolve({ code: code === null ? signal : code, out }));
  });
  return { child, done };
}

/** Runs the three stages as three processes of this script and merges their reports. */
async function runChain(args) {
  const started = Date.now();
  const [ordersService, billingService, mailerService] = args.services;
  const poison = [...new Set(args.poison.filter(number => number >= 1 && number <= args.count))].sort((a, b) => a - b);
  const common = [
    '--bootstrap', args.bootstrap,
    '--otlp-protocol', args.otlpProtocol,
    '--otlp-endpoint', args.otlpEndpoint,
    '--otlp-timeout', String(args.otlpTimeout),
    '--run-id', args.runId,
    '--partitions', String(args.partitions),
  ];
  const deadLetter = args.deadLetterTopic ? ['--dead-letter-topic', args.deadLetterTopic] : [];
  const batch = args.batch ? ['--batch'] : [];
  const stages = [
    ['consume', ...common, '--service', mailerService, '--topic', args.invoicesTopic,
      '--group', args.mailerGroup, '--count', String(args.count - poison.length), ...batch],
    ['relay', ...common, '--service', billingService, '--input-topic', args.ordersTopic,
      '--group', args.billingGroup, '--output-topic', args.invoicesTopic, '--count', String(args.count),
      ...deadLetter, ...batch],
    ['produce', ...common, '--service', ordersService, '--topic', args.ordersTopic,
      '--count', String(args.count), '--correlation-in', args.correlationIn,
      ...(poison.length ? ['--poison', poison.join(',')] : []),
      ...(args.correlationPrefix !== undefined ? ['--correlation-prefix', args.correlationPrefix] : [])],
  ];
  // Create every topic first so that the consumers' subscriptions find them.
  const { Kafka, logLevel } = require('kafkajs');
  const kafka = new Kafka({
    clientId: 'chain',
    brokers: [args.bootstrap],
    logLevel: logLevel.WARN,
    logCreator: stderrLogCreator,
    connectionTimeout: 3000,
    retry: { initialRetryTime: 200, retries: 5 },
  });
  await ensureTopics(kafka, args.partitions, [args.ordersTopic, args.invoicesTopic, ...(args.deadLetterTopic ? [args.deadLetterTopic] : [])]);

  const grace = FLUSH_TIMEOUT_MS + 2 * args.otlpTimeout * 1000 + 15000;
  // Each stage gets what is left of the chain's --timeout.
  const start = stage => {
    const remaining = Math.max(1, args.timeout - (Date.now() - started) / 1000);
    return startChild([...stage, '--timeout', remaining.toFixed(1)]);
  };
  const running = [];
  const stopAll = signal => {
    // Killed from outside (a test that gave up): take the stages down too.
    for (const { child } of running) if (child.exitCode === null) child.kill('SIGKILL');
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.on('SIGTERM', stopAll);
  process.on('SIGINT', stopAll);
  let killed = false;
  const killer = setTimeout(() => {
    // The stages time out on their own; this only stops a hung one.
    killed = true;
    for (const { child } of running) if (child.exitCode === null) child.kill('SIGKILL');
  }, args.timeout * 1000 + grace);
  const results = new Array(stages.length);
  if (args.batch) {
    // One stage after the other, so that each consumer finds all its messages waiting and
    // takes them in as few batches as kafkajs fetches.
    for (let index = stages.length - 1; index >= 0; index -= 1) {
      const stage = start(stages[index]);
      running.push(stage);
      results[index] = await stage.done;
    }
  } else {
    // All at once: consumers first, so they are joining their groups while orders flow.
    for (const stage of stages) running.push(start(stage));
    const done = await Promise.all(running.map(({ done }) => done));
    done.forEach((result, index) => {
      results[index] = result;
    });
  }
  clearTimeout(killer);
  const reports = [];
  const errors = [];
  stages.forEach((stage, index) => {
    const { code, out } = results[index];
    let document;
    try {
      document = JSON.parse(out);
    } catch {
      errors.push(`the ${stage[0]} stage printed no JSON (exit ${code}${killed ? ', killed after the timeout' : ''})`);
      return;
    }
    reports.push(...document.services);
    errors.push(...document.errors);
    if (code !== 0 && document.errors.length === 0) errors.push(`the ${stage[0]} stage exited ${code}`);
  });
  const order = ['produce', 'relay', 'consume'];
  reports.sort((a, b) => order.indexOf(a.role) - order.indexOf(b.role));
  return { services: reports, errors, started };
}

// Command line ----------------------------------------------------------------------------

const USAGE = `usage: node kafka_chain.js ROLE --bootstrap HOST:PORT --otlp-endpoint URL [options]

ROLE: produce | relay | consume | chain

common options:
  --bootstrap HOST:PORT            Kafka bootstrap server (required)
  --otlp-protocol grpc|http        default http (protobuf)
  --otlp-endpoint URL              http: http://HOST:PORT/v1/traces; grpc: http://HOST:PORT (required)
  --otlp-timeout SECONDS           per OTLP export (default 10)
  --run-id ID                      names this run (default: 6 random hex digits)
  --timeout SECONDS                before giving up (default 60)
  --partitions N                   partitions of topics this creates (default 1)
produce: --topic orders --service orders-service --count 3 --poison 2,5
         --correlation-in baggage|header|both --correlation-prefix PREFIX (default ord-<run-id>-)
relay:   --input-topic orders --group billing --output-topic invoices --service billing-service
         --count 3 --dead-letter-topic T --batch
consume: --topic invoices --group mailer --service mailer-service --count 3 --dead-letter-topic T --batch
chain:   --count 3 --poison 2 --correlation-in baggage --correlation-prefix PREFIX
         --orders-topic orders --invoices-topic invoices --billing-group billing --mailer-group mailer
         --dead-letter-topic T --batch --services orders-service,billing-service,mailer-service
(defaults shown; see tests/python/README.md)
`;

const ROLE_OPTIONS = {
  produce: ['topic', 'service', 'count', 'poison', 'correlation-in', 'correlation-prefix'],
  relay: ['input-topic', 'group', 'output-topic', 'service', 'count', 'dead-letter-topic', 'batch'],
  consume: ['topic', 'group', 'service', 'count', 'dead-letter-topic', 'batch'],
  chain: ['count', 'poison', 'correlation-in', 'correlation-prefix', 'orders-topic', 'invoices-topic',
    'billing-group', 'mailer-group', 'dead-letter-topic', 'services', 'batch'],
};
const COMMON_OPTIONS = ['bootstrap', 'otlp-protocol', 'otlp-endpoint', 'otlp-timeout', 'run-id', 'timeout', 'partitions'];
const ROLE_DEFAULTS = {
  produce: { topic: 'orders', service: DEFAULT_SERVICES[0] },
  relay: { 'input-topic': 'orders', group: 'billing', 'output-topic': 'invoices', service: DEFAULT_SERVICES[1] },
  consume: { topic: 'invoices', group: 'mailer', service: DEFAULT_SERVICES[2] },
  chain: {
    'orders-topic': 'orders', 'invoices-topic': 'invoices', 'billing-group': 'billing', 'mailer-group': 'mailer',
    services: DEFAULT_SERVICES.join(','),
  },
};

function number(text, name, { integer = false } = {}) {
  const value = Number(text);
  if (text === '' || !Number.isFinite(value) || (integer && !Number.isInteger(value))) {
    throw new UsageError(`--${name} expects a number, got ${JSON.stringify(text)}`);
  }
  return value;
}

function parseCommandLine(argv) {
  const [role, ...rest] = argv;
  if (role === '--help' || role === '-h') {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  if (!ROLE_OPTIONS[role]) throw new UsageError(`unknown role ${JSON.stringify(role)}`);
  const allowed = [...COMMON_OPTIONS, ...ROLE_OPTIONS[role]];
  const options = Object.fromEntries(allowed.map(name => [name, { type: name === 'batch' ? 'boolean' : 'string' }]));
  options.help = { type: 'boolean', short: 'h' };
  let values;
  try {
    ({ values } = parseArgs({ args: rest, options, strict: true, allowPositionals: false }));
  } catch (error) {
    throw new UsageError(error.message);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const given = { ...ROLE_DEFAULTS[role], ...values };
  for (const required of ['bootstrap', 'otlp-endpoint']) {
    if (!given[required]) throw new UsageError(`--${required} is required`);
  }
  const protocol = given['otlp-protocol'] || 'http';
  if (!['grpc', 'http'].includes(protocol)) throw new UsageError(`--otlp-protocol must be grpc or http`);
  const correlationIn = given['correlation-in'] || 'baggage';
  if (!['baggage', 'header', 'both'].includes(correlationIn)) {
    throw new UsageError(`--correlation-in must be baggage, header or both`);
  }
  const poison = (given.poison || '')
    .split(',')
    .filter(part => part.trim() !== '')
    .map(part => number(part.trim(), 'poison', { integer: true }));
  const services = (given.services || '').split(',').map(name => name.trim());
  if (role === 'chain' && (services.length !== 3 || services.some(name => !name))) {
    throw new UsageError(`--services expects three comma-separated names`);
  }
  const args = {
    role,
    bootstrap: given.bootstrap,
    otlpProtocol: protocol,
    otlpEndpoint: given['otlp-endpoint'],
    otlpTimeout: given['otlp-timeout'] !== undefined ? number(given['otlp-timeout'], 'otlp-timeout') : 10,
    runId: given['run-id'] || crypto.randomBytes(3).toString('hex'),
    timeout: given.timeout !== undefined ? number(given.timeout, 'timeout') : 60,
    partitions: given.partitions !== undefined ? number(given.partitions, 'partitions', { integer: true }) : 1,
    count: given.count !== undefined ? number(given.count, 'count', { integer: true }) : 3,
    poison,
    correlationIn,
    correlationPrefix: given['correlation-prefix'],
    topic: given.topic,
    inputTopic: given['input-topic'],
    outputTopic: given['output-topic'],
    group: given.group,
    service: given.service,
    deadLetterTopic: given['dead-letter-topic'],
    ordersTopic: given['orders-topic'],
    invoicesTopic: given['invoices-topic'],
    billingGroup: given['billing-group'],
    mailerGroup: given['mailer-group'],
    services,
    batch: Boolean(given.batch),
  };
  if (args.count < 0 || args.timeout <= 0 || args.partitions < 1) {
    throw new UsageError('--count must be >= 0, --timeout > 0 and --partitions >= 1');
  }
  return args;
}

async function main() {
  let args;
  try {
    args = parseCommandLine(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`${USAGE}\n${TOOL}: error: ${error.message}\n`);
    process.exit(2);
  }
  let started = Date.now();
  let services = [];
  let errors;
  try {
    if (args.role === 'chain') {
      ({ services, errors, started } = await runChain(args));
    } else {
      const run = { produce: runProduce, relay: runRelay, consume: runConsume }[args.role];
      services = await run(args);
      errors = services.flatMap(service => service.errors);
    }
  } catch (error) {
    // A broker that cannot be reached, a topic that cannot be created: still one report.
    process.stderr.write(`${TOOL}: ${error && error.stack ? error.stack : error}\n`);
    errors = [`${args.role}: ${error && error.message ? error.message : error}`];
  }
  const correlationIds = [];
  for (const service of services) {
    for (const entry of service.messages) {
      if (entry.correlation_id !== null && !correlationIds.includes(entry.correlation_id)) {
        correlationIds.push(entry.correlation_id);
      }
    }
  }
  const document = {
    tool: TOOL,
    language: LANGUAGE,
    role: args.role,
    run_id: args.runId,
    bootstrap: args.bootstrap,
    otlp: { protocol: args.otlpProtocol, endpoint: args.otlpEndpoint },
    ok: errors.length === 0,
    errors,
    elapsed_ms: Date.now() - started,
    correlation_ids: correlationIds,
    services,
  };
  process.stdout.write(`${JSON.stringify(document)}\n`, () => process.exit(errors.length === 0 ? 0 : 1));
}

main().catch(error => {
  process.stderr.write(`${TOOL}: ${error && error.stack ? error.stack : error}\n`);
  process.exit(1);
});
