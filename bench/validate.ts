/**
 * bench/validate: what validating one engagement event costs, zod vs a compiled JSON-schema
 * validator (ajv), next to what decoding it costs (JSON.parse). Prints figures; asserts nothing
 * about speed. `--short` is the CI mode (well under 15 s).
 *
 *   node bench/dist/validate.js [--short] [--events N] [--reps N]
 *
 * Measured, each over the same corpus (the objects JSON.parse gives back, as ingest sees them):
 *   1. zodValidateEvent                      the zod alternative: schema + time window + attrs size
 *                                            + the output event / rejection reason
 *   2. zod safeParse                         the zod schema alone
 *   3. ajv validate                          core's JSON schema compiled by ajv, allErrors: false
 *   3b. validateEvent                        the production path (ajv + the same checks as 1)
 *   4. JSON.parse                            per NDJSON line, and per 1,000-event JSON array body
 *
 * Every figure is the median of several timed passes after warm-up passes. The validators are
 * checked against each other on every event: the disagreement counts should be 0.
 */
import { Ajv } from 'ajv';
import { z } from 'zod';
import {
  EVENT_KINDS,
  copyOptionalFields,
  eventJsonSchema,
  mulberry32 as rng,
  validateEvent,
  type EngagementEvent,
  type EventKind,
  type EventLimits,
  type EventValidation,
  type RejectReason,
} from '@afterglow/core';
import { flag, opt } from './args.js';

const SHORT = flag('short');
const EVENTS = opt('events', SHORT ? 20_000 : 200_000);
const REPS = opt('reps', SHORT ? 5 : 7);
const WARMUP = 2;
const INVALID_SHARE = 0.05;

/** The defaults of loadConfig() (EVENT_MAX_AGE_MS, EVENT_MAX_FUTURE_MS, ...). */
const LIMITS: EventLimits = { maxAgeMs: 7 * 24 * 3_600_000, maxFutureMs: 5 * 60_000, liveLateMs: 10 * 60_000, maxAttrsBytes: 2048, dedupWindowMs: 300_000 };
/** One fixed server clock for the whole run, so the time-window checks judge every pass alike. */
const NOW = Date.now();

// ---------------------------------------------------------------------------------------------
// Production validates with the JSON schema in core/src/events.ts, compiled by ajv. The zod 4
// schema below is the alternative it was chosen over, kept here so the choice stays measurable:
// same constraints, same output object and reason codes (the agreement counts must stay 0).
// ---------------------------------------------------------------------------------------------

const ajvValidate = new Ajv({ allErrors: false, allowUnionTypes: true }).compile(eventJsonSchema);

const ULID_RE = /^[0-7][0-9A-HJKMNP-TV-Z]{25}$/i;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const KIND_SET: ReadonlySet<string> = new Set(EVENT_KINDS);
const zLabel = z.string().min(1).max(128);
const zId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/);
const zodSchema = z.object({
  event_id: z.string().refine((s) => ULID_RE.test(s) || UUID_RE.test(s), 'must be a ULID or a UUID'),
  tenant_id: zId,
  campaign_id: zId,
  asset_id: zId,
  kind: z.string().refine((k) => KIND_SET.has(k), `must be one of ${EVENT_KINDS.join(', ')}`),
  value: z.number().finite().nonnegative().max(1e12).default(1),
  occurred_at: z.union([z.number().int().nonnegative(), z.iso.datetime({ offset: true }).transform((s) => Date.parse(s))]),
  received_at: z.unknown().optional(),
  channel: zLabel.optional(),
  placement: zLabel.optional(),
  region: zLabel.optional(),
  device: zLabel.optional(),
  edge_node: zLabel.optional(),
  attrs: z.record(z.string().max(64), z.union([z.string().max(1024), z.number().finite(), z.boolean()])).optional(),
});

/** validateEvent as it was on zod: same limits, same output object, same reason codes. */
function zodValidateEvent(input: unknown, limits: EventLimits, now: number): EventValidation {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return { ok: false, reason: 'not_an_object', message: 'an event must be a JSON object' };
  }
  const parsed = zodSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = String(issue?.path[0] ?? '');
    const reason: RejectReason =
      field && (input as Record<string, unknown>)[field] === undefined
        ? 'missing_field'
        : field === 'kind'
          ? 'unknown_kind'
          : field === 'event_id'
            ? 'invalid_event_id'
            : 'invalid_field';
    return { ok: false, reason, field, message: issue?.message ?? 'invalid' };
  }
  const e = parsed.data;
  if (e.occurred_at > now + limits.maxFutureMs) return { ok: false, reason: 'too_far_in_future', field: 'occurred_at', message: 'future' };
  if (e.occurred_at < now - limits.maxAgeMs) return { ok: false, reason: 'too_old', field: 'occurred_at', message: 'old' };
  if (e.attrs !== undefined && Buffer.byteLength(JSON.stringify(e.attrs)) > limits.maxAttrsBytes) {
    return { ok: false, reason: 'attrs_too_large', field: 'attrs', message: 'attrs' };
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
  copyOptionalFields(e, event);
  return { ok: true, event };
}

// ---------------------------------------------------------------------------------------------
// The corpus: ~95% valid events with varied optional fields and attrs, ~5% invalid of many kinds.
// ---------------------------------------------------------------------------------------------

const rand = rng(0xaf7e);
const int = (n: number) => Math.floor(rand() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
const chance = (p: number) => rand() < p;

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const HEX = '0123456789abcdef';
function ulidAt(ms: number): string {
  let s = '';
  for (let i = 0, t = ms; i < 10; i++, t = Math.floor(t / 32)) s = CROCKFORD[t % 32]! + s;
  for (let i = 0; i < 16; i++) s += CROCKFORD[int(32)];
  return s;
}
function uuid(): string {
  let s = '';
  for (let i = 0; i < 32; i++) {
    if (i === 8 || i === 12 || i === 16 || i === 20) s += '-';
    s += i === 12 ? '4' : HEX[int(16)];
  }
  return s;
}

const TENANTS = ['acme', 'globex', 'initech', 'umbrella.eu', 'tenant:42'];
const CHANNELS = ['tiktok', 'instagram', 'youtube', 'ctv', 'display', 'search'];
const PLACEMENTS = ['feed', 'story', 'reel', 'preroll', 'banner_top', 'sidebar'];
const REGIONS = ['eu-west', 'us-east', 'ap-south', 'São Paulo', '東京', 'sa-east'];
const DEVICES = ['mobile', 'desktop', 'tablet', 'tv', 'iPhone 15 Pro 🍏'];
const EDGES = ['fra1', 'iad2', 'sin1', 'gru1', 'nrt1'];
const ATTR_KEYS = ['variant', 'ab_bucket', 'os', 'app_version', 'session_depth', 'muted', 'autoplay', 'cta', 'lang', 'scroll_pct'];

function validEvent(): Record<string, unknown> {
  const kind = pick(EVENT_KINDS);
  const occurredAt = NOW - int(3 * 24 * 3_600_000) + int(60_000); // up to 3 days old, up to 1 min ahead
  const e: Record<string, unknown> = {
    event_id: chance(0.8) ? ulidAt(occurredAt) : chance(0.5) ? uuid() : uuid().toUpperCase(),
    tenant_id: pick(TENANTS),
    campaign_id: `cmp-${int(500)}`,
    asset_id: chance(0.5) ? `asset-${int(20_000)}` : `a_${int(1e6).toString(36)}.v${int(5)}`,
    kind,
    occurred_at: chance(0.03) ? new Date(occurredAt).toISOString() : occurredAt,
  };
  if (kind === 'dwell') e.value = int(120_000);
  else if (kind === 'conversion') e.value = Math.round(rand() * 50_000) / 100;
  else if (chance(0.7)) e.value = 1; // else: left out, the schema's default applies
  if (chance(0.9)) e.channel = pick(CHANNELS);
  if (chance(0.6)) e.placement = pick(PLACEMENTS);
  if (chance(0.8)) e.region = pick(REGIONS);
  if (chance(0.8)) e.device = pick(DEVICES);
  if (chance(0.3)) e.edge_node = pick(EDGES);
  if (chance(0.05)) e.received_at = NOW - 1_000; // client-sent, overwritten
  if (chance(0.02)) e.sdk = 'web/3.1.0'; // unknown key: allowed, dropped
  if (chance(0.45)) {
    const attrs: Record<string, string | number | boolean> = {};
    for (let i = 0, n = 1 + int(6); i < n; i++) {
      const key = pick(ATTR_KEYS);
      const t = int(3);
      attrs[key] = t === 0 ? `v${int(1000)}` : t === 1 ? int(100_000) / 10 : chance(0.5);
    }
    e.attrs = attrs;
  }
  return e;
}

/** Invalid events: each breaks exactly one rule, so the reason codes can be compared too. */
const BREAKERS: readonly [string, (e: Record<string, unknown>) => unknown][] = [
  ['missing tenant_id', (e) => { delete e.tenant_id; return e; }],
  ['missing event_id', (e) => { delete e.event_id; return e; }],
  ['missing occurred_at', (e) => { delete e.occurred_at; return e; }],
  ['event_id: not base32 (U)', (e) => { e.event_id = `01HZ${'U'.repeat(22)}`; return e; }],
  ['event_id: 25 chars', (e) => { e.event_id = ulidAt(NOW).slice(0, 25); return e; }],
  ['event_id: ULID > 2^48 ms (first char 8)', (e) => { e.event_id = `8${ulidAt(NOW).slice(1)}`; return e; }],
  ['event_id: number', (e) => { e.event_id = 12345; return e; }],
  ['unknown kind', (e) => { e.kind = pick(['purchase', 'Click', '', 'view ']); return e; }],
  ['tenant_id: bad char', (e) => { e.tenant_id = pick(['acme/eu', 'ac me', '_acme', 'acme\n', 'acme*']); return e; }],
  ['asset_id: 129 chars', (e) => { e.asset_id = `a${'x'.repeat(128)}`; return e; }],
  ['campaign_id: empty', (e) => { e.campaign_id = ''; return e; }],
  ['value: negative', (e) => { e.value = -1; return e; }],
  ['value: > 1e12', (e) => { e.value = 2e12; return e; }],
  ['value: string', (e) => { e.value = '1'; return e; }],
  ['occurred_at: float', (e) => { e.occurred_at = NOW + 0.5; return e; }],
  ['occurred_at: negative', (e) => { e.occurred_at = -5; return e; }],
  ['occurred_at: unsafe integer', (e) => { e.occurred_at = 2 ** 60; return e; }],
  ['occurred_at: bad ISO', (e) => { e.occurred_at = pick(['2025-02-30T10:00:00Z', '2025-06-01 10:00:00Z', '2025-06-01T10:00Z', 'yesterday']); return e; }],
  ['occurred_at: too old', (e) => { e.occurred_at = NOW - 8 * 24 * 3_600_000; return e; }],
  ['occurred_at: too far ahead', (e) => { e.occurred_at = NOW + 3_600_000; return e; }],
  ['channel: null', (e) => { e.channel = null; return e; }],
  ['region: empty', (e) => { e.region = ''; return e; }],
  ['device: 129 chars', (e) => { e.device = 'd'.repeat(129); return e; }],
  ['device: 129 emoji (code points)', (e) => { e.device = '📱'.repeat(129); return e; }],
  ['attrs: nested object', (e) => { e.attrs = { os: { name: 'ios' } }; return e; }],
  ['attrs: null value', (e) => { e.attrs = { os: null }; return e; }],
  ['attrs: array', (e) => { e.attrs = ['a', 'b']; return e; }],
  ['attrs: 65-char key', (e) => { e.attrs = { ['k'.repeat(65)]: 1 }; return e; }],
  ['attrs: 1025-char value', (e) => { e.attrs = { note: 'n'.repeat(1025) }; return e; }],
  ['attrs: > 2048 bytes', (e) => { e.attrs = { a: 'x'.repeat(1000), b: 'y'.repeat(1000), c: 'z'.repeat(100) }; return e; }],
  ['not an object: array', () => [validEvent()]],
  ['not an object: null', () => null],
  ['not an object: string', () => 'event'],
];

/** Near-limit events that must pass both validators (boundaries are where the two could differ). */
const EDGE_VALID: readonly ((e: Record<string, unknown>) => void)[] = [
  (e) => { e.asset_id = `a${'x'.repeat(127)}`; },
  (e) => { e.device = 'd'.repeat(128); },
  (e) => { e.device = '📱'.repeat(128); }, // 128 code points, 256 UTF-16 units: both count code points
  (e) => { e.attrs = { ['k'.repeat(64)]: 'v'.repeat(1024) }; },
  (e) => { e.value = 1e12; },
  (e) => { e.event_id = String(e.event_id).toLowerCase(); },
  (e) => { e.occurred_at = new Date(NOW - 1000).toISOString().replace('Z', '+00:00'); },
];

function buildCorpus(n: number): { ndjson: string; lines: string[]; events: unknown[] } {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    let ev: unknown;
    if (chance(INVALID_SHARE)) ev = pick(BREAKERS)[1](validEvent());
    else {
      const e = validEvent();
      if (chance(0.01)) pick(EDGE_VALID)(e);
      ev = e;
    }
    lines.push(JSON.stringify(ev));
  }
  const ndjson = `${lines.join('\n')}\n`;
  // What validation sees is what JSON.parse gives back, as in ingest (object shapes included).
  const events = ndjson.split('\n').slice(0, -1).map((l) => JSON.parse(l) as unknown);
  return { ndjson, lines, events };
}

// ---------------------------------------------------------------------------------------------
// Timing. One loop function per subject, so no call site is shared (and made polymorphic).
// ---------------------------------------------------------------------------------------------

let sink = 0; // results flow here so that no pass can be optimised away

function timeIt(pass: () => number, n: number): { medianNs: number; minNs: number; maxNs: number } {
  for (let i = 0; i < WARMUP; i++) sink += pass();
  const ns: number[] = [];
  for (let r = 0; r < REPS; r++) {
    const t0 = process.hrtime.bigint();
    sink += pass();
    ns.push(Number(process.hrtime.bigint() - t0) / n);
  }
  ns.sort((a, b) => a - b);
  return { medianNs: ns[Math.floor(ns.length / 2)]!, minNs: ns[0]!, maxNs: ns[ns.length - 1]! };
}

function main(): void {
  const t0 = performance.now();
  const { ndjson, lines, events } = buildCorpus(EVENTS);
  const bodies: string[] = [];
  for (let i = 0; i < lines.length; i += 1000) bodies.push(`[${lines.slice(i, i + 1000).join(',')}]`);
  const invalidOnly = events.filter((e) => !zodValidateEvent(e, LIMITS, NOW).ok);
  const validOnly = events.filter((e) => zodValidateEvent(e, LIMITS, NOW).ok);

  // --- agreement ---
  const reasons = new Map<string, number>();
  let zodVsAjv = 0;
  let prodVsAjvProd = 0;
  let reasonMismatch = 0;
  let schemaValid = 0;
  const examples: string[] = [];
  for (const e of events) {
    const z = zodSchema.safeParse(e).success;
    const a = ajvValidate(e);
    if (z) schemaValid++;
    if (z !== a) {
      zodVsAjv++;
      if (examples.length < 5) examples.push(`  zod=${z} ajv=${a}: ${JSON.stringify(e).slice(0, 160)}`);
    }
    const p = zodValidateEvent(e, LIMITS, NOW);
    const q = validateEvent(e, LIMITS, NOW);
    if (!p.ok) reasons.set(p.reason, (reasons.get(p.reason) ?? 0) + 1);
    if (p.ok !== q.ok) {
      prodVsAjvProd++;
      if (examples.length < 5) examples.push(`  validateEvent=${p.ok} ajv+checks=${q.ok}: ${JSON.stringify(e).slice(0, 160)}`);
    } else if (p.ok && q.ok) {
      if (JSON.stringify(p.event) !== JSON.stringify(q.event)) {
        prodVsAjvProd++;
        if (examples.length < 5) examples.push(`  output differs: ${JSON.stringify(p.event).slice(0, 160)}`);
      }
    } else if (!p.ok && !q.ok && (p.reason !== q.reason || p.field !== q.field)) {
      reasonMismatch++;
      if (examples.length < 5) examples.push(`  reason ${p.reason}/${p.field} vs ${q.reason}/${q.field}: ${JSON.stringify(e).slice(0, 120)}`);
    }
  }

  // --- speed ---
  const n = events.length;
  const results: [string, { medianNs: number; minNs: number; maxNs: number }][] = [];
  results.push([
    '1  zod validateEvent (zod + window + attrs)',
    timeIt(() => {
      let ok = 0;
      for (let i = 0; i < n; i++) if (zodValidateEvent(events[i], LIMITS, NOW).ok) ok++;
      return ok;
    }, n),
  ]);
  results.push([
    '2  zodSchema.safeParse',
    timeIt(() => {
      let ok = 0;
      for (let i = 0; i < n; i++) if (zodSchema.safeParse(events[i]).success) ok++;
      return ok;
    }, n),
  ]);
  results.push([
    '3  ajv validate (compiled JSON schema)',
    timeIt(() => {
      let ok = 0;
      for (let i = 0; i < n; i++) if (ajvValidate(events[i])) ok++;
      return ok;
    }, n),
  ]);
  results.push([
    '3b validateEvent (production: ajv + checks)',
    timeIt(() => {
      let ok = 0;
      for (let i = 0; i < n; i++) if (validateEvent(events[i], LIMITS, NOW).ok) ok++;
      return ok;
    }, n),
  ]);
  results.push([
    '4  JSON.parse per NDJSON line',
    timeIt(() => {
      let k = 0;
      for (let i = 0; i < n; i++) k += JSON.parse(lines[i]!) === null ? 0 : 1;
      return k;
    }, n),
  ]);
  results.push([
    '4b JSON.parse per 1,000-event array body',
    timeIt(() => {
      let k = 0;
      for (let i = 0; i < bodies.length; i++) k += (JSON.parse(bodies[i]!) as unknown[]).length;
      return k;
    }, n),
  ]);

  // Rejections are where zod's issue objects cost most: the same subjects on the invalid events alone.
  const ni = invalidOnly.length;
  const nv = validOnly.length;
  const split: [string, number, number][] = [];
  const zodSplit = (set: unknown[]) =>
    timeIt(() => {
      let ok = 0;
      for (let i = 0; i < set.length; i++) if (zodSchema.safeParse(set[i]).success) ok++;
      return ok;
    }, set.length).medianNs;
  const ajvSplit = (set: unknown[]) =>
    timeIt(() => {
      let ok = 0;
      for (let i = 0; i < set.length; i++) if (ajvValidate(set[i])) ok++;
      return ok;
    }, set.length).medianNs;
  split.push(['safeParse', zodSplit(validOnly), zodSplit(invalidOnly)]);
  split.push(['ajv', ajvSplit(validOnly), ajvSplit(invalidOnly)]);

  // --- report ---
  const fmt = (x: number) => x.toLocaleString('en-US', { maximumFractionDigits: 0 });
  console.log(`bench/validate${SHORT ? ' --short' : ''}: node ${process.version}, ajv 8, zod 4`);
  console.log(
    `corpus: ${fmt(n)} events, ${(ndjson.length / 1e6).toFixed(1)} MB NDJSON (${Math.round(ndjson.length / n)} B/event); ` +
      `schema-valid ${fmt(schemaValid)}, accepted by validateEvent ${fmt(nv)}, rejected ${fmt(ni)} (${((ni / n) * 100).toFixed(1)}%)`,
  );
  console.log(`rejections: ${[...reasons].sort((a, b) => b[1] - a[1]).map(([r, c]) => `${r} ${c}`).join(', ')}`);
  console.log(`agreement: safeParse vs ajv disagree on ${zodVsAjv}; validateEvent vs ajv+checks disagree on ${prodVsAjvProd} (ok flag / output), reason code differs on ${reasonMismatch}`);
  for (const x of examples) console.log(x);
  console.log(`\ntimings: median of ${REPS} passes after ${WARMUP} warm-up passes (min-max in brackets)`);
  const parseNs = results.find(([name]) => name.startsWith('4 '))![1].medianNs;
  for (const [name, r] of results) {
    console.log(
      `  ${name.padEnd(44)} ${r.medianNs.toFixed(0).padStart(6)} ns/event  ${fmt(1e9 / r.medianNs).padStart(12)} events/s` +
        `  [${r.minNs.toFixed(0)}-${r.maxNs.toFixed(0)}]  ${(r.medianNs / parseNs).toFixed(2)}x JSON.parse`,
    );
  }
  console.log(`\nby outcome (median ns/event): ${fmt(nv)} accepted / ${fmt(ni)} rejected events`);
  for (const [name, v, i] of split) console.log(`  ${name.padEnd(12)} accepted ${v.toFixed(0).padStart(6)}   rejected ${i.toFixed(0).padStart(6)}`);
  if (zodVsAjv > 0 || prodVsAjvProd > 0) console.log('\nWARNING: the validators disagree, so the timings above do not compare like with like');
  console.log(`\ndone in ${((performance.now() - t0) / 1000).toFixed(1)} s${sink < 0 ? '' : ''}`);
}

main();
