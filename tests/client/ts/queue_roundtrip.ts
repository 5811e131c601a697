// One message through a queue with a client generated from the server's own /openapi.json: the types come from
// openapi-typescript (module "broker-openapi", see tsconfig.json), the calls from openapi-fetch.
//
//   BROKER_URL=... BROKER_KEY=... tsx queue_roundtrip.ts [QUEUE]     (or the queue in BROKER_QUEUE)
//
// Creates the queue, publishes a JSON payload, consumes it, acks it with its receipt, checks that the stats
// show it gone, and prints one JSON line. Every answer is checked twice: at compile time against the generated
// types (a field the document names wrongly does not type-check), and at run time against what the types
// promise (each answer must hold exactly the documented fields, of the documented JSON types). Any other
// answer exits 1.
import createClient from "openapi-fetch";
import type { components, paths } from "broker-openapi";

type Schemas = components["schemas"];

function fail(message: string): never {
  console.error(`queue_roundtrip: ${message}`);
  process.exit(1);
}

function env(name: string): string {
  const value = process.env[name];
  if (!value) fail(`${name} is not set`);
  return value;
}

// A run-time check of one documented type; `Shape<T>` must list every field of T with a check of its own type.
type Check<T> = (value: unknown) => value is T;
type Shape<T> = { [K in keyof T]-?: Check<T[K]> };

const isString: Check<string> = (v): v is string => typeof v === "string";
const isInteger: Check<number> = (v): v is number => Number.isInteger(v);
const isBoolean: Check<boolean> = (v): v is boolean => typeof v === "boolean";
const isJson: Check<unknown> = (v): v is unknown => v !== undefined;
const orNull = <T>(check: Check<T>): Check<T | null> => (v): v is T | null => v === null || check(v);
const arrayOf = <T>(check: Check<T>): Check<T[]> => (v): v is T[] => Array.isArray(v) && v.every(check);
const optional = <T>(check: Check<T>): Check<T | undefined> => (v): v is T | undefined => v === undefined || check(v);

function object<T>(shape: Shape<T>): Check<T> {
  return (v): v is T => {
    if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
    const checks: Record<string, Check<unknown>> = shape;
    const sent: Record<string, unknown> = v as Record<string, unknown>;
    return Object.keys(sent).every((field) => field in checks) &&  // no field the document does not name
      Object.entries(checks).every(([field, check]) => check(sent[field]));  // undefined where one is absent
  };
}

const QueueRecord = object<Schemas["QueueRecord"]>({
  queue: isString, type: isString, dead_letter_queue: orNull(isString), max_retries: isInteger,
  message_retention_days: isInteger, visibility_timeout_default: isInteger, enable_priority: isBoolean,
  created_at: isString,
});
const Published = object<Schemas["Published"]>({ message_id: isString });
const QueueMessage = object<Schemas["QueueMessage"]>({
  message_id: isString, payload: isJson, priority: isInteger, group_id: orNull(isString), attempts: isInteger,
  enqueued_at: isString, receipt: isString, lease_expires_at: isString,
});
const AckFailure = object<Schemas["AckFailure"]>({
  message_id: isString, message: isString,
  code: (v): v is "MESSAGE_NOT_FOUND" | "LEASE_EXPIRED" => v === "MESSAGE_NOT_FOUND" || v === "LEASE_EXPIRED",
});
const NackedItem = object<Schemas["NackedItem"]>({ message_id: isString, requeued: isBoolean });
const Consumed = object<Schemas["Consumed"]>({
  messages: arrayOf(QueueMessage), acked: optional(arrayOf(isString)), nacked: optional(arrayOf(NackedItem)),
  failed: optional(arrayOf(AckFailure)),
});
const Acked = object<Schemas["Acked"]>({ message_id: isString, acked: isBoolean });
const QueueStats = object<Schemas["QueueStats"]>({
  queue: isString, available: isInteger, in_flight: isInteger, dlq: isInteger, delayed: isInteger,
  oldest_age_seconds: orNull(isInteger),
});

// The answer of one call: 200 with a body of the documented shape, or exit 1.
async function expect<T>(what: string, call: Promise<{ data?: T; error?: unknown; response: Response }>,
                         check: Check<T>): Promise<T> {
  const { data, error, response } = await call;
  if (response.status !== 200 || error !== undefined) {
    fail(`${what}: HTTP ${response.status} ${JSON.stringify(error)}`);
  }
  if (!check(data)) fail(`${what}: the answer is not as documented: ${JSON.stringify(data)}`);
  return data;
}

// JSON text with the keys of every object sorted: equal values give equal texts.
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => typeof v === "object" && v !== null && !Array.isArray(v)
    ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1)))
    : v);
}

function same(what: string, got: unknown, wanted: unknown): void {
  if (canonical(got) !== canonical(wanted)) {
    fail(`${what}: got ${JSON.stringify(got)}, wanted ${JSON.stringify(wanted)}`);
  }
}

const queue = process.argv[2] ?? process.env["BROKER_QUEUE"] ?? `ts-roundtrip-${Date.now()}`;
const client = createClient<paths>({
  baseUrl: env("BROKER_URL"),
  headers: { Authorization: `Bearer ${env("BROKER_KEY")}` },
});
const payload = { order_id: "o_ts_1", amount_cents: 1299, tags: ["typescript", "openapi-fetch"], gift: null };

const created = await expect("queue.create",
  client.POST("/v1/queue/create", { body: { name: queue, max_retries: 3 } }), QueueRecord);
same("queue.create queue", created.queue, queue);
same("queue.create max_retries", created.max_retries, 3);

const published = await expect("queue.publish",
  client.POST("/v1/queue/publish", { body: { queue, payload } }), Published);

const consumed = await expect("queue.consume",
  client.POST("/v1/queue/consume", { body: { queue, max_messages: 10, wait_seconds: 5, visibility_timeout: 60 } }),
  Consumed);
const message = consumed.messages[0];
if (message === undefined || consumed.messages.length !== 1) fail(`queue.consume: ${JSON.stringify(consumed)}`);
same("consumed message_id", message.message_id, published.message_id);
same("consumed payload", message.payload, payload);
same("consumed attempts", message.attempts, 1);

const acked = await expect("queue.ack",
  client.POST("/v1/queue/ack", { body: { queue, message_id: message.message_id, receipt: message.receipt } }),
  Acked);
same("queue.ack", acked, { message_id: message.message_id, acked: true });

const stats = await expect("queue.stats",
  client.GET("/v1/queue/stats/{queue}", { params: { path: { queue } } }), QueueStats);
same("queue.stats", stats, { queue, available: 0, in_flight: 0, dlq: 0, delayed: 0, oldest_age_seconds: null });

console.log(JSON.stringify({
  queue: created.queue,
  message_id: published.message_id,
  receipt: message.receipt,
  attempts: message.attempts,
  payload: message.payload,
  acked: acked.acked,
  stats,
}));
