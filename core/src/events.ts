import { createHmac } from 'node:crypto';
import { Ajv, type ErrorObject } from 'ajv';
import type { EventLimits } from './config.js';
import { VIDEO_KINDS } from './live-protocol.js';

/** The engagement event contract: what clients send, what travels on `engagement.events`. */

/**
 * The kinds every reader counts: the live windows (stream/live), the dashboards, the rollups. Their
 * order is the order of live window rows and of the WebSocket legend.
 */
export const EVENT_KINDS = ['impression', 'view', 'click', 'like', 'share', 'comment', 'conversion', 'dwell'] as const;
/**
 * Video plays (see VIDEO_VALUE_RULES): stored and rolled up like the others (migration 16), measured
 * by the video metrics (stream/live/src/live/video.ts) from the video rollup, not by the live windows.
 */
export { VIDEO_KINDS };
/** Every kind a client may send; appended to only (positions are stored in ClickHouse enums). */
export const ALL_EVENT_KINDS = [...EVENT_KINDS, ...VIDEO_KINDS] as const;
export type EventKind = (typeof ALL_EVENT_KINDS)[number];
export type VideoKind = (typeof VIDEO_KINDS)[number];

/** Whether the live windows count this kind (video plays are measured from the store instead). */
export function isWindowKind(kind: EventKind): kind is (typeof EVENT_KINDS)[number] {
  return !(VIDEO_KINDS as readonly string[]).includes(kind);
}

/**
 * What `value` means for a video kind, and the values it may take (anything else is refused with
 * `value_out_of_range`, a missing required value with `missing_field`):
 *   video_start     a play began (one per play)                       1 (or absent)
 *   video_progress  the play reached this percent of the duration      integer 1..99 (required; 100 is video_complete)
 *   video_seconds   the play reached this second (3 s = a hook view)   integer 1..86400 (required)
 *   video_complete  the play reached the end                          1 (or absent)
 *   video_watch     milliseconds played since this play's last report  > 0 and <= 3 600 000 (required; sums to watch time)
 */
export const VIDEO_VALUE_RULES: Readonly<Record<VideoKind, { required: boolean; min: number; max: number; integer: boolean; exclusiveMin?: boolean }>> = {
  video_start: { required: false, min: 1, max: 1, integer: true },
  video_progress: { required: true, min: 1, max: 99, integer: true },
  video_seconds: { required: true, min: 1, max: 86_400, integer: true },
  video_complete: { required: false, min: 1, max: 1, integer: true },
  video_watch: { required: true, min: 0, max: 3_600_000, integer: false, exclusiveMin: true },
};

/** Ids we put in keys, subjects and SQL: printable, no quotes or spaces. */
const LABEL_MAX = 128;

export interface EngagementEvent {
  event_id: string;
  tenant_id: string;
  campaign_id: string;
  asset_id: string;
  kind: EventKind;
  /** dwell: milliseconds; conversion: monetary value; video kinds: see VIDEO_VALUE_RULES; otherwise 1. */
  value: number;
  /** Client clock, epoch ms. */
  occurred_at: number;
  /** Server clock at ingest, epoch ms. Whatever the client sends here is overwritten. */
  received_at: number;
  channel?: string;
  placement?: string;
  region?: string;
  device?: string;
  edge_node?: string;
  /**
   * Who saw it, as the client knows them (a cookie, device or account id). Never leaves ingest:
   * ingest replaces it with `viewer_hash`, a keyed hash, before the event reaches the bus.
   */
  viewer_id?: string;
  /** Keyed hash of (tenant_id, viewer_id), set by ingest only; the unit of reach and frequency. */
  viewer_hash?: string;
  attrs?: Record<string, string | number | boolean>;
}

/** Why an event was refused. Stable codes: clients and dashboards match on them. */
export const REJECT_REASONS = [
  'not_an_object',
  'missing_field',
  'invalid_field',
  'invalid_event_id',
  'unknown_kind',
  'too_far_in_future',
  'too_old',
  /** History import only: the event is recent enough for live ingest, which must count it. */
  'too_recent',
  'attrs_too_large',
  'undecodable',
  /** The event names another tenant than the API key that sent it (issue 8). */
  'tenant_forbidden',
  /** An edge key sent an event for a placement it is not allowed. */
  'placement_forbidden',
  /** A video event's value is outside what its kind allows (VIDEO_VALUE_RULES): progress over 99 %, a fractional second, ... */
  'value_out_of_range',
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

export interface EventRejection {
  reason: RejectReason;
  field?: string;
  message: string;
}

export type EventValidation = { ok: true; event: EngagementEvent } | ({ ok: false } & EventRejection);

/**
 * The schema, as JSON Schema compiled by ajv. bench/validate measured it against an equivalent
 * zod 4 schema on the same corpus (0 disagreements): ajv took 0.6-0.9x the time of JSON.parse per
 * event, zod 2.5-4x (and twice that on rejected events, where it builds issue objects), so ajv
 * keeps validation from dominating ingest CPU, also under hostile traffic.
 */
const EVENT_ID_PATTERN =
  '^(?:[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})$';
const ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$';
/** ISO 8601 date-time with an offset (zod's iso.datetime({ offset: true }) rule, leap days included). */
const ISO_DATETIME_PATTERN =
  '^(?:(?:\\d\\d[2468][048]|\\d\\d[13579][26]|\\d\\d0[48]|[02468][048]00|[13579][26]00)-02-29|\\d{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\\d|30)|(?:02)-(?:0[1-9]|1\\d|2[0-8])))' +
  'T(?:(?:[01]\\d|2[0-3]):[0-5]\\d:[0-5]\\d(?:\\.\\d+)?(?:Z|([+-](?:[01]\\d|2[0-3]):[0-5]\\d)))$';

const labelSchema = { type: 'string', minLength: 1, maxLength: LABEL_MAX } as const;
const idSchema = { type: 'string', pattern: ID_PATTERN } as const;

export const eventJsonSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  type: 'object',
  required: ['event_id', 'tenant_id', 'campaign_id', 'asset_id', 'kind', 'occurred_at'],
  properties: {
    event_id: { type: 'string', pattern: EVENT_ID_PATTERN },
    tenant_id: idSchema,
    campaign_id: idSchema,
    asset_id: idSchema,
    kind: { type: 'string', enum: [...ALL_EVENT_KINDS] },
    value: { type: 'number', minimum: 0, maximum: 1e12 },
    occurred_at: {
      anyOf: [
        { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
        { type: 'string', pattern: ISO_DATETIME_PATTERN },
      ],
    },
    channel: labelSchema,
    placement: labelSchema,
    region: labelSchema,
    device: labelSchema,
    edge_node: labelSchema,
    viewer_id: { type: 'string', minLength: 1, maxLength: 256 },
    viewer_hash: { type: 'string', pattern: '^[0-9a-f]{32}$' },
    attrs: {
      type: 'object',
      propertyNames: { type: 'string', maxLength: 64 },
      additionalProperties: { type: ['string', 'number', 'boolean'], maxLength: 1024 },
    },
  },
  // Unknown top-level keys are allowed and dropped from the stored event.
} as const;

const ajv = new Ajv({ allErrors: false, allowUnionTypes: true });
const checkSchema = ajv.compile(eventJsonSchema);

/** The shape an event has once the schema accepted it (before defaults and normalisation). */
type SchemaEvent = Omit<EngagementEvent, 'value' | 'occurred_at' | 'received_at'> & {
  value?: number;
  occurred_at: number | string;
};

/**
 * Validate one decoded event against the schema and the time/size limits.
 * `now` is the server clock; it becomes `received_at`.
 */
export function validateEvent(input: unknown, limits: EventLimits, now: number): EventValidation {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return { ok: false, reason: 'not_an_object', message: 'an event must be a JSON object' };
  }
  if (!checkSchema(input)) return { ok: false, ...rejectionFromSchema(checkSchema.errors?.[0], input as Record<string, unknown>) };
  const e = input as SchemaEvent;
  const occurredAt = typeof e.occurred_at === 'number' ? e.occurred_at : Date.parse(e.occurred_at);
  if (occurredAt > now + limits.maxFutureMs) {
    return {
      ok: false,
      reason: 'too_far_in_future',
      field: 'occurred_at',
      message: `occurred_at is ${occurredAt - now} ms in the future (limit ${limits.maxFutureMs} ms)`,
    };
  }
  if (occurredAt < now - limits.maxAgeMs) {
    return {
      ok: false,
      reason: 'too_old',
      field: 'occurred_at',
      message: `occurred_at is ${now - occurredAt} ms old (late window ${limits.maxAgeMs} ms)`,
    };
  }
  const valueRejection = checkKindValue(e.kind, e.value);
  if (valueRejection) return { ok: false, ...valueRejection };
  if (e.attrs !== undefined) {
    const size = Buffer.byteLength(JSON.stringify(e.attrs));
    if (size > limits.maxAttrsBytes) {
      return { ok: false, reason: 'attrs_too_large', field: 'attrs', message: `attrs take ${size} bytes (limit ${limits.maxAttrsBytes})` };
    }
  }
  const event: EngagementEvent = {
    event_id: e.event_id,
    tenant_id: e.tenant_id,
    campaign_id: e.campaign_id,
    asset_id: e.asset_id,
    kind: e.kind,
    value: e.value ?? 1,
    occurred_at: occurredAt,
    received_at: now,
  };
  copyOptionalFields(e, event);
  return { ok: true, event };
}

/** The per-kind value rules (video kinds only; the schema already bounds every value to 0..1e12). */
function checkKindValue(kind: EventKind, value: number | undefined): EventRejection | undefined {
  const rule = (VIDEO_VALUE_RULES as Partial<Record<EventKind, (typeof VIDEO_VALUE_RULES)[VideoKind]>>)[kind];
  if (!rule) return undefined;
  if (value === undefined) {
    return rule.required ? { reason: 'missing_field', field: 'value', message: `value is required for ${kind}` } : undefined;
  }
  const low = rule.exclusiveMin ? value <= rule.min : value < rule.min;
  if (low || value > rule.max || (rule.integer && !Number.isInteger(value))) {
    const range = `${rule.exclusiveMin ? '>' : '>='} ${rule.min} and <= ${rule.max}`;
    return { reason: 'value_out_of_range', field: 'value', message: `${kind} value must be ${rule.integer ? 'an integer ' : ''}${range} (got ${value})` };
  }
  return undefined;
}

type OptionalField = 'channel' | 'placement' | 'region' | 'device' | 'edge_node' | 'viewer_id' | 'viewer_hash' | 'attrs';

/** The event's optional fields, copied only when present (attrs as a copy, never shared). */
export function copyOptionalFields(from: Pick<Partial<EngagementEvent>, OptionalField>, to: EngagementEvent): void {
  if (from.channel !== undefined) to.channel = from.channel;
  if (from.placement !== undefined) to.placement = from.placement;
  if (from.region !== undefined) to.region = from.region;
  if (from.device !== undefined) to.device = from.device;
  if (from.edge_node !== undefined) to.edge_node = from.edge_node;
  if (from.viewer_id !== undefined) to.viewer_id = from.viewer_id;
  if (from.viewer_hash !== undefined) to.viewer_hash = from.viewer_hash;
  if (from.attrs !== undefined) to.attrs = { ...from.attrs };
}

/**
 * Validate an event read back from the bus (written by ingest or by any other producer): the same
 * schema and limits, judged against its own `received_at` so that a sink catching up hours later
 * does not reject what ingest rightly accepted.
 */
export function validateBusEvent(input: unknown, limits: EventLimits): EventValidation {
  const receivedAt = (input as { received_at?: unknown } | null)?.received_at;
  if (typeof receivedAt !== 'number' || !Number.isSafeInteger(receivedAt) || receivedAt <= 0) {
    return { ok: false, reason: 'invalid_field', field: 'received_at', message: 'bus events must carry received_at (epoch ms)' };
  }
  return validateEvent(input, limits, receivedAt);
}

/**
 * An event record read back from the bus: `ok` with the event (and whether it is late), or `ok: false`
 * with why it is not one; the sink dead-letters those with that reason, the live paths skip them.
 */
export type BusEventRead = { ok: true; event: EngagementEvent; late: boolean } | { ok: false; reason: RejectReason | 'undecodable'; field?: string; message: string };

/**
 * What readBusEvent made of the latest records' bytes, by the bytes' identity. The in-process log
 * hands the same Buffer to every group (the sink, the live aggregator, the inference workers), so
 * the JSON parse and schema check run once per record rather than once per consumer; each caller
 * still gets its own copy of the event. Buffers of other buses are distinct per read: a miss.
 * Two generations of BUS_READS_KEPT records at most, so a group far behind (the log may hold
 * hundreds of MB for it) re-decodes what it reads rather than the memo growing with the backlog.
 */
const BUS_READS_KEPT = 32_768;
let busReads = new WeakMap<object, { limits: EventLimits; read: BusEventRead }>();
let busReadsBefore = new WeakMap<object, { limits: EventLimits; read: BusEventRead }>();
let busReadsCount = 0;

/** Decode and validate one bus record (every consumer of engagement.events reads records through this). */
export function readBusEvent(value: Buffer | Uint8Array, limits: EventLimits): BusEventRead {
  const memo = busReads.get(value) ?? busReadsBefore.get(value);
  if (memo !== undefined && memo.limits === limits) return copyRead(memo.read);
  const read = decodeBusEvent(value, limits);
  if (++busReadsCount > BUS_READS_KEPT) {
    busReadsBefore = busReads;
    busReads = new WeakMap();
    busReadsCount = 1;
  }
  busReads.set(value, { limits, read });
  return copyRead(read);
}

function decodeBusEvent(value: Buffer | Uint8Array, limits: EventLimits): BusEventRead {
  let input: unknown;
  try {
    input = decodeEvent(value);
  } catch (err) {
    return { ok: false, reason: 'undecodable', message: `not JSON: ${(err as Error).message}` };
  }
  const v = validateBusEvent(input, limits);
  return v.ok ? { ok: true, event: v.event, late: isLate(v.event, limits) } : v;
}

/** A read the caller may change without changing what the next reader of the same bytes gets. */
function copyRead(read: BusEventRead): BusEventRead {
  if (!read.ok) return { ...read };
  const e = read.event;
  const event: EngagementEvent = {
    event_id: e.event_id,
    tenant_id: e.tenant_id,
    campaign_id: e.campaign_id,
    asset_id: e.asset_id,
    kind: e.kind,
    value: e.value,
    occurred_at: e.occurred_at,
    received_at: e.received_at,
  };
  copyOptionalFields(e, event);
  return { ok: true, event, late: read.late };
}

/**
 * Late: received more than the live late window after it happened. Counted in ClickHouse (the sink's
 * `late` flag) but not in the live windows; decided by the event's own timestamps, so a replay decides the same way.
 */
export function isLate(e: Pick<EngagementEvent, 'occurred_at' | 'received_at'>, limits: Pick<EventLimits, 'liveLateMs'>): boolean {
  return e.received_at - e.occurred_at > limits.liveLateMs;
}

function rejectionFromSchema(err: ErrorObject | undefined, input: Record<string, unknown>): EventRejection {
  if (!err) return { reason: 'invalid_field', message: 'invalid event' };
  if (err.keyword === 'required') {
    const field = String((err.params as { missingProperty: string }).missingProperty);
    return { reason: 'missing_field', field, message: `${field} is required` };
  }
  const field = err.instancePath.split('/')[1] ?? '';
  if (field === 'kind') {
    return { reason: 'unknown_kind', field, message: `unknown kind ${JSON.stringify(String(input.kind)).slice(0, 80)}: must be one of ${ALL_EVENT_KINDS.join(', ')}` };
  }
  if (field === 'event_id') return { reason: 'invalid_event_id', field, message: 'event_id must be a ULID or a UUID' };
  return { reason: 'invalid_field', field, message: `${err.instancePath.slice(1).replaceAll('/', '.')}: ${err.message ?? 'invalid'}` };
}

/**
 * The keyed hash that stands for a viewer id everywhere after ingest: HMAC-SHA256 over tenant and
 * id (one viewer id in two tenants gives two unrelated hashes), 128 bits as hex. The key stays
 * outside the store, so the stored hashes cannot be matched back to ids by guessing them.
 */
export function viewerHash(key: Buffer, tenantId: string, viewerId: string): string {
  return createHmac('sha256', key).update(tenantId).update('\u0000').update(viewerId).digest('hex').slice(0, 32);
}

/** The viewer-hash key: VIEWER_ID_KEY when set, else one derived from the API key pepper. */
export function viewerHashKey(configured: string | undefined, pepper: string | undefined): Buffer | undefined {
  if (configured) return Buffer.from(configured, 'base64');
  if (pepper) return createHmac('sha256', pepper).update('afterglow viewer id').digest();
  return undefined;
}

/**
 * What ingest does to an accepted event's viewer fields: a client never sets viewer_hash itself,
 * and viewer_id is replaced by its hash (dropped when no key is configured).
 */
export function sealViewer(event: EngagementEvent, key: Buffer | undefined): void {
  delete event.viewer_hash;
  if (event.viewer_id === undefined) return;
  if (key) event.viewer_hash = viewerHash(key, event.tenant_id, event.viewer_id);
  delete event.viewer_id;
}

/** Wire encoding on the bus. JSON keeps the topic readable by any consumer and by operators. */
export function encodeEvent(e: EngagementEvent): Buffer {
  return Buffer.from(JSON.stringify(e));
}

export function decodeEvent(buf: Buffer | Uint8Array): unknown {
  return JSON.parse(Buffer.isBuffer(buf) ? buf.toString('utf8') : Buffer.from(buf).toString('utf8'));
}

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** A ULID for `event_id`: 48-bit ms timestamp + 80 random bits, so ids sort by creation time. */
export function ulid(now = Date.now()): string {
  let time = '';
  let t = now;
  for (let i = 0; i < 10; i++) {
    time = CROCKFORD[t % 32]! + time;
    t = Math.floor(t / 32);
  }
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let rand = '';
  for (let i = 0; i < 16; i++) rand += CROCKFORD[bytes[i]! & 31];
  return time + rand;
}
