import { z } from 'zod';
import type { EventLimits } from './config.js';

/** The engagement event contract: what clients send, what travels on `engagement.events`. */

export const EVENT_KINDS = ['impression', 'view', 'click', 'like', 'share', 'comment', 'conversion', 'dwell'] as const;
export type EventKind = (typeof EVENT_KINDS)[number];
const KIND_SET: ReadonlySet<string> = new Set(EVENT_KINDS);

/** Client-supplied idempotency key: a ULID (Crockford base32) or a UUID (any version). */
const ULID_RE = /^[0-7][0-9A-HJKMNP-TV-Z]{25}$/i;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Ids we put in keys, subjects and SQL: printable, no separators that collide with ours. */
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const LABEL_MAX = 128;

export interface EngagementEvent {
  event_id: string;
  tenant_id: string;
  campaign_id: string;
  asset_id: string;
  kind: EventKind;
  /** dwell: milliseconds; conversion: monetary value; otherwise 1. */
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
  'attrs_too_large',
  'undecodable',
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

export interface EventRejection {
  reason: RejectReason;
  field?: string;
  message: string;
}

export type EventValidation = { ok: true; event: EngagementEvent } | ({ ok: false } & EventRejection);

const label = z.string().min(1).max(LABEL_MAX);
const id = z.string().regex(ID_RE, 'must be 1-128 characters of [A-Za-z0-9._:-], starting alphanumeric');
const epochMs = z.union([
  z.number().int().nonnegative(),
  z.iso.datetime({ offset: true }).transform((s) => Date.parse(s)),
]);

/**
 * The schema. zod 4 was measured against a hand-written checker and ajv in bench/validate
 * (see README): fast enough that JSON.parse, not validation, dominates ingest CPU.
 */
export const engagementEventSchema = z.object({
  event_id: z.string().refine((s) => ULID_RE.test(s) || UUID_RE.test(s), 'must be a ULID or a UUID'),
  tenant_id: id,
  campaign_id: id,
  asset_id: id,
  kind: z.string().refine((k) => KIND_SET.has(k), `must be one of ${EVENT_KINDS.join(', ')}`),
  value: z.number().finite().nonnegative().max(1e12).default(1),
  occurred_at: epochMs,
  received_at: z.unknown().optional(),
  channel: label.optional(),
  placement: label.optional(),
  region: label.optional(),
  device: label.optional(),
  edge_node: label.optional(),
  attrs: z.record(z.string().max(64), z.union([z.string().max(1024), z.number().finite(), z.boolean()])).optional(),
});

/**
 * Validate one decoded event against the schema and the time/size limits.
 * `now` is the server clock; it becomes `received_at`.
 */
export function validateEvent(input: unknown, limits: EventLimits, now: number): EventValidation {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return { ok: false, reason: 'not_an_object', message: 'an event must be a JSON object' };
  }
  const parsed = engagementEventSchema.safeParse(input);
  if (!parsed.success) return { ok: false, ...rejectionFromIssue(parsed.error.issues[0], input as Record<string, unknown>) };
  const e = parsed.data;
  if (e.occurred_at > now + limits.maxFutureMs) {
    return {
      ok: false,
      reason: 'too_far_in_future',
      field: 'occurred_at',
      message: `occurred_at is ${e.occurred_at - now} ms in the future (limit ${limits.maxFutureMs} ms)`,
    };
  }
  if (e.occurred_at < now - limits.maxAgeMs) {
    return {
      ok: false,
      reason: 'too_old',
      field: 'occurred_at',
      message: `occurred_at is ${now - e.occurred_at} ms old (late window ${limits.maxAgeMs} ms)`,
    };
  }
  if (e.attrs !== undefined) {
    const size = Buffer.byteLength(JSON.stringify(e.attrs));
    if (size > limits.maxAttrsBytes) {
      return {
        ok: false,
        reason: 'attrs_too_large',
        field: 'attrs',
        message: `attrs take ${size} bytes (limit ${limits.maxAttrsBytes})`,
      };
    }
  }
  const event: EngagementEvent = {
    event_id: e.event_id,
    tenant_id: e.tenant_id,
    campaign_id: e.campaign_id,
    asset_id: e.asset_id,
    kind: e.kind as EventKind,
    value: e.value,
    occurred_at: e.occurred_at,
    received_at: now,
  };
  if (e.channel !== undefined) event.channel = e.channel;
  if (e.placement !== undefined) event.placement = e.placement;
  if (e.region !== undefined) event.region = e.region;
  if (e.device !== undefined) event.device = e.device;
  if (e.edge_node !== undefined) event.edge_node = e.edge_node;
  if (e.attrs !== undefined) event.attrs = e.attrs;
  return { ok: true, event };
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

function rejectionFromIssue(issue: z.core.$ZodIssue | undefined, input: Record<string, unknown>): EventRejection {
  if (!issue) return { reason: 'invalid_field', message: 'invalid event' };
  const field = String(issue.path[0] ?? '');
  if (field && input[field] === undefined) {
    return { reason: 'missing_field', field, message: `${field} is required` };
  }
  if (field === 'kind') {
    return { reason: 'unknown_kind', field, message: `unknown kind ${JSON.stringify(String(input.kind)).slice(0, 80)}: ${issue.message}` };
  }
  if (field === 'event_id') return { reason: 'invalid_event_id', field, message: `event_id ${issue.message}` };
  const where = issue.path.join('.');
  return { reason: 'invalid_field', field, message: `${where}: ${issue.message}` };
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
