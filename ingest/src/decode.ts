import { setImmediate as nextTurn } from 'node:timers/promises';
import { unpack } from 'msgpackr';
import { BadRequestError } from '@afterglow/core';

/** One item of a request: a decoded value, or a line that could not be decoded (NDJSON only). */
export type DecodedItem = { ok: true; value: unknown } | { ok: false; message: string };

const NDJSON_TYPES = new Set(['application/x-ndjson', 'application/ndjson', 'application/jsonl', 'application/x-jsonlines']);

export function isNdjson(contentType: string | undefined): boolean {
  return NDJSON_TYPES.has((contentType ?? '').split(';')[0]!.trim().toLowerCase());
}

/** What one request body may cost before it is refused. */
export interface BodyBounds {
  /** More events (array elements, non-blank lines) than this: 413 too_many_events, found before any parsing. */
  maxEvents: number;
  /** More undecodable NDJSON lines than this: the request is refused whole (400 too_many_bad_lines). */
  maxBadLines: number;
  /** An element or line longer than this is not parsed: no valid event is that long. */
  maxEventBytes: number;
}

export const DEFAULT_BOUNDS: BodyBounds = { maxEvents: 100_000, maxBadLines: 1_000, maxEventBytes: 64 * 1024 };

/** Parsing yields to the event loop after this much work, so one large body cannot hold every other request. */
const SLICE_MS = 8;
/** JSON array elements are parsed in batches of about this many bytes. */
const BATCH_BYTES = 128 * 1024;

const BOM = [0xef, 0xbb, 0xbf];
// biome-ignore lint/suspicious/noConstEnum: file-local, so tsc and esbuild both inline it (the scanner's hot loop compares it per byte)
const enum Phase {
  Start,
  Array,
  Single,
  Done,
  Other,
}

/**
 * A byte scan of a request body as it streams in (before anything is parsed): where each event
 * starts and ends, and how many there are. NDJSON: non-blank lines. JSON: the top-level array's
 * elements (strings and nesting tracked, so commas inside values do not count), or one object.
 * It throws as soon as the body holds more events than the bound, or one event longer than any
 * valid one, so a hostile body is refused after a few bytes of work per byte received, never
 * after a parse per line. A leading UTF-8 BOM is skipped.
 */
export class BodyScanner {
  /** [start, end, line] per event: byte offsets into the whole body, and (NDJSON) its 1-based line number. */
  readonly spans: number[] = [];
  private pos = 0;
  private bom = 0;
  // NDJSON
  private line = 1;
  private lineStart = -1;
  // JSON
  private phase = Phase.Start;
  private depth = 0;
  private inString = false;
  private escape = false;
  private elemStart = -1;
  private afterComma = false;
  private structural: string | undefined;
  private top: 'array' | 'object' | undefined;

  /** JSON: the offset just past the top-level value, once it has closed (-1 before). */
  end = -1;

  constructor(
    readonly mode: 'json' | 'ndjson',
    private readonly bounds: BodyBounds,
    /** JSON: stop at the end of the top-level value, whatever follows it (a value inside a larger document). */
    private readonly stopAtEnd = false,
  ) {}

  /** JSON: whether the body is one array of events or one event object (undefined: neither, see jsonError). */
  get shape(): 'array' | 'object' | undefined {
    return this.top;
  }

  get count(): number {
    return this.spans.length / 3;
  }

  get bytes(): number {
    return this.pos;
  }

  push(chunk: Uint8Array): void {
    let i = 0;
    // A BOM may be split across chunks; only the body's first three bytes can be one.
    while (this.pos + i < 3 && this.bom === this.pos + i && i < chunk.length && chunk[i] === BOM[this.pos + i]) {
      this.bom++;
      i++;
    }
    if (this.mode === 'ndjson') this.scanLines(chunk, i);
    else this.scanJson(chunk, i);
    this.pos += chunk.length;
  }

  /** The body ended: closes the last line, checks the JSON was complete. */
  finish(): void {
    if (this.mode === 'ndjson') {
      if (this.lineStart >= 0) this.add(this.lineStart, this.pos, this.line);
      this.lineStart = -1;
      return;
    }
    if (this.structural) return;
    if (this.phase === Phase.Array || (this.phase === Phase.Single && this.depth > 0)) this.structural = 'the body ends before its closing bracket';
    else if (this.phase === Phase.Single) this.phase = Phase.Done;
  }

  private add(start: number, end: number, line: number): void {
    if (end - start > this.bounds.maxEventBytes) this.tooLarge(this.mode === 'ndjson' ? line : undefined);
    this.spans.push(start, end, line);
    if (this.spans.length / 3 > this.bounds.maxEvents) {
      throw new BadRequestError('too_many_events', `more than ${this.bounds.maxEvents} events in one request (the limit); split the batch`, 413);
    }
  }

  private tooLarge(line?: number): never {
    throw new BadRequestError(
      'event_too_large',
      `${line === undefined ? 'an element' : `line ${line}`} is over ${this.bounds.maxEventBytes} bytes; no valid event is that long`,
      413,
    );
  }

  private scanLines(chunk: Uint8Array, from: number): void {
    const base = this.pos;
    let start = this.lineStart;
    for (let i = from; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (b === 0x0a) {
        if (start >= 0) this.add(start, base + i, this.line);
        start = -1;
        this.line++;
      } else if (start < 0 && b !== 0x20 && b !== 0x09 && b !== 0x0d && b !== 0x0b && b !== 0x0c) {
        start = base + i;
      }
    }
    this.lineStart = start;
    // One line longer than any event: the request is refused whole rather than buffered to the
    // body limit (a single line cannot be skipped without reading it anyway).
    if (start >= 0 && base + chunk.length - start > this.bounds.maxEventBytes) this.tooLarge(this.line);
  }

  private scanJson(chunk: Uint8Array, from: number): void {
    if (this.structural || this.phase === Phase.Other || (this.stopAtEnd && this.phase === Phase.Done)) return;
    const base = this.pos;
    for (let i = from; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (this.inString) {
        if (this.escape) this.escape = false;
        else if (b === 0x5c) this.escape = true;
        else if (b === 0x22) this.inString = false;
        continue;
      }
      const ws = b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
      switch (this.phase) {
        case Phase.Start:
          if (ws) continue;
          if (b === 0x5b) {
            this.phase = Phase.Array;
            this.top = 'array';
          } else if (b === 0x7b) {
            this.phase = Phase.Single;
            this.top = 'object';
            this.depth = 1;
            this.elemStart = base + i;
          } else {
            this.phase = Phase.Other;
            return;
          }
          continue;
        case Phase.Array:
          if (this.depth === 0) {
            if (ws) continue;
            if (b === 0x2c) {
              if (this.elemStart < 0) return this.fail('an empty element (two commas, or a comma first)');
              this.add(this.elemStart, base + i, 0);
              this.elemStart = -1;
              this.afterComma = true;
              continue;
            }
            if (b === 0x5d) {
              if (this.elemStart >= 0) this.add(this.elemStart, base + i, 0);
              else if (this.afterComma) return this.fail('a comma before the closing bracket');
              this.elemStart = -1;
              this.phase = Phase.Done;
              this.end = base + i + 1;
              if (this.stopAtEnd) return;
              continue;
            }
            if (b === 0x7d) return this.fail('a closing brace where the array should close');
            if (this.elemStart < 0) this.elemStart = base + i;
          }
          if (b === 0x22) this.inString = true;
          else if (b === 0x5b || b === 0x7b) this.depth++;
          else if (b === 0x5d || b === 0x7d) this.depth--;
          continue;
        case Phase.Single:
          if (b === 0x22) this.inString = true;
          else if (b === 0x5b || b === 0x7b) this.depth++;
          else if (b === 0x5d || b === 0x7d) {
            if (--this.depth === 0) {
              this.add(this.elemStart, base + i + 1, 0);
              this.phase = Phase.Done;
              this.end = base + i + 1;
              if (this.stopAtEnd) return;
            }
          }
          continue;
        case Phase.Done:
          if (!ws) return this.fail('data after the end of the JSON value');
          continue;
      }
    }
    if (this.elemStart >= 0 && base + chunk.length - this.elemStart > this.bounds.maxEventBytes && (this.phase === Phase.Array || this.phase === Phase.Single)) {
      this.tooLarge();
    }
  }

  private fail(message: string): void {
    this.structural ??= message;
  }

  /** Why the JSON body cannot be valid, found by the scan (undefined: the elements must still parse). */
  get jsonError(): BadRequestError | undefined {
    if (this.mode !== 'json') return undefined;
    if (this.structural) return new BadRequestError('invalid_json', `body is not valid JSON: ${this.structural}`);
    if (this.phase === Phase.Start) return new BadRequestError('invalid_json', 'body is not valid JSON: it is empty');
    return undefined;
  }
}

/** Scans a whole body at once (bodies that did not stream through a scanner: tests, tools). */
export function scanBody(body: Uint8Array, mode: 'json' | 'ndjson', bounds: BodyBounds = DEFAULT_BOUNDS): BodyScanner {
  const scanner = new BodyScanner(mode, bounds);
  scanner.push(body);
  scanner.finish();
  return scanner;
}

/** Yields to the event loop once SLICE_MS of work has passed since the last yield (long loops over one request's events). */
export class Slicer {
  private since = performance.now();
  async maybeYield(): Promise<void> {
    if (performance.now() - this.since < SLICE_MS) return;
    await nextTurn();
    this.since = performance.now();
  }
}

/**
 * A JSON body is an array of events (or one event object). The whole body must parse; a body that
 * does not is refused as a unit, since no event boundaries can be trusted in it. Elements are
 * parsed in batches between which other requests run.
 */
export async function decodeJsonBody(body: Buffer, bounds: BodyBounds = DEFAULT_BOUNDS, scanned?: BodyScanner): Promise<DecodedItem[]> {
  const scan = scanned ?? scanBody(body, 'json', bounds);
  const invalid = scan.jsonError;
  if (invalid) throw invalid;
  const { spans } = scan;
  const items: DecodedItem[] = [];
  const slicer = new Slicer();
  if (scan.shape === undefined) {
    // A JSON scalar (never a batch) or not JSON at all. Short ones are parsed to say which; a long
    // one is refused without parsing.
    if (body.length <= bounds.maxEventBytes) parseJson(body.toString('utf8'));
    throw new BadRequestError(body.length <= bounds.maxEventBytes ? 'invalid_body' : 'invalid_json', 'expected an array of events or one event object');
  }
  if (scan.shape === 'object') return [{ ok: true, value: parseJson(body.toString('utf8', spans[0]!, spans[1]!)) }];
  for (let i = 0; i < spans.length; ) {
    // Consecutive elements with the commas between them: `[` + that + `]` is a JSON array.
    const start = spans[i]!;
    let next = i + 3;
    while (next < spans.length && spans[next + 1]! - start <= BATCH_BYTES) next += 3;
    const batch = parseJson(`[${body.toString('utf8', start, spans[next - 2]!)}]`) as unknown[];
    for (const value of batch) items.push({ ok: true, value });
    i = next;
    await slicer.maybeYield();
  }
  return items;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new BadRequestError('invalid_json', `body is not valid JSON: ${(err as Error).message}`);
  }
}

/**
 * NDJSON: one event per line. A line that does not parse is rejected on its own ('undecodable')
 * and every other line still counts — a bad line loses nothing else. Past `maxBadLines` such lines
 * the sender is not speaking NDJSON at all: the request is refused whole, naming the first one.
 */
export async function decodeNdjsonBody(body: Buffer, bounds: BodyBounds = DEFAULT_BOUNDS, scanned?: BodyScanner): Promise<DecodedItem[]> {
  const scan = scanned ?? scanBody(body, 'ndjson', bounds);
  const { spans } = scan;
  const items: DecodedItem[] = [];
  const slicer = new Slicer();
  let bad = 0;
  let sinceCheck = 0;
  let firstBad: string | undefined;
  for (let i = 0; i < spans.length; i += 3) {
    const start = spans[i]!;
    const end = spans[i + 1]!;
    let message: string | undefined;
    try {
      items.push({ ok: true, value: JSON.parse(body.toString('utf8', start, end)) });
    } catch (err) {
      message = `line is not valid JSON: ${(err as Error).message}`;
    }
    if (message !== undefined) {
      items.push({ ok: false, message });
      firstBad ??= `line ${spans[i + 2]}: ${message}`;
      if (++bad > bounds.maxBadLines) {
        throw new BadRequestError('too_many_bad_lines', `more than ${bounds.maxBadLines} lines are not valid JSON; the first is ${firstBad}`);
      }
    }
    if (++sinceCheck === 256) {
      sinceCheck = 0;
      await slicer.maybeYield();
    }
  }
  return items;
}

/** A WebSocket message: `{ seq, events }`, an array of events, or one event; JSON text or MessagePack. */
export interface StreamMessage {
  seq: number | undefined;
  items: DecodedItem[];
}

/**
 * A JSON text message, bounded like an HTTP body: a bare array is scanned as one; an object is an
 * envelope when it has a top-level `events` array, whose elements are scanned in place (the rest of
 * the envelope, `seq`, must be small), or else one event. So a message of a million tiny elements
 * is refused from the count, and a large one is parsed in batches with other work between.
 * MessagePack messages are decoded whole (decodeStreamMessage).
 */
export async function decodeStreamText(data: Buffer, bounds: BodyBounds = DEFAULT_BOUNDS): Promise<StreamMessage> {
  try {
    const events = eventsArrayAt(data);
    if (events < 0) {
      const items = await decodeJsonBody(data, bounds);
      // An object with a non-array `events` is still an envelope (refused below, as before).
      const only = items.length === 1 && items[0]!.ok ? items[0]!.value : undefined;
      if (only !== null && typeof only === 'object' && !Array.isArray(only) && 'events' in only) {
        const { seq, events: value } = only as { seq?: unknown; events: unknown };
        return { seq: checkSeq(seq), items: toItems(value) };
      }
      return { seq: undefined, items };
    }
    const inner = new BodyScanner('json', bounds, true);
    try {
      inner.push(data.subarray(events));
    } catch (err) {
      // Refused from the count: still say which message, when its seq comes before its events.
      throw Object.assign(err as Error, { seq: seqBefore(data, events) });
    }
    inner.finish();
    const invalid = inner.jsonError;
    if (invalid) throw invalid;
    const after = events + inner.end;
    if (events + (data.length - after) > bounds.maxEventBytes) {
      throw new BadRequestError('invalid_body', `the message besides its events is over ${bounds.maxEventBytes} bytes`);
    }
    const bom = data[0] === 0xef && data[1] === 0xbb && data[2] === 0xbf ? 3 : 0;
    const envelope = parseJson(`${data.toString('utf8', bom, events)}[]${data.toString('utf8', after)}`) as { seq?: unknown };
    const seq = checkSeq(envelope.seq);
    return { seq, items: await decodeJsonBody(data.subarray(events, after), bounds, inner) };
  } catch (err) {
    if (err instanceof BadRequestError && err.code === 'invalid_json') throw new BadRequestError('undecodable', err.message.replace(/^body is not/, 'message is not'));
    throw err;
  }
}

/**
 * Where the array value of a top-level `"events"` key starts in a JSON object, or -1 (not an
 * object, no such key, or not an array there). Keys written with escapes are not recognized: such
 * a message is then read as one event, bounded by INGEST_MAX_EVENT_BYTES.
 */
function eventsArrayAt(data: Buffer): number {
  let i = data[0] === 0xef && data[1] === 0xbb && data[2] === 0xbf ? 3 : 0;
  const ws = (b: number | undefined) => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
  while (ws(data[i])) i++;
  if (data[i] !== 0x7b) return -1;
  let depth = 0;
  for (; i < data.length; i++) {
    const b = data[i]!;
    if (b === 0x22) {
      const start = i;
      for (i++; i < data.length && data[i] !== 0x22; i++) if (data[i] === 0x5c) i++;
      if (depth !== 1 || i - start - 1 !== 6 || data.toString('latin1', start + 1, i) !== 'events') continue;
      let j = i + 1;
      while (ws(data[j])) j++;
      if (data[j] !== 0x3a) continue;
      j++;
      while (ws(data[j])) j++;
      return data[j] === 0x5b ? j : -1;
    }
    if (b === 0x7b || b === 0x5b) depth++;
    else if (b === 0x7d || b === 0x5d) depth--;
  }
  return -1;
}

/** The seq of an envelope whose `events` array starts at `events`, read from what precedes it. */
function seqBefore(data: Buffer, events: number): number | undefined {
  if (events > 1024) return undefined;
  try {
    const seq = (JSON.parse(`${data.toString('utf8', 0, events).replace(/^\ufeff/, '')}[]}`) as { seq?: unknown }).seq;
    return typeof seq === 'number' && Number.isSafeInteger(seq) && seq >= 0 ? seq : undefined;
  } catch {
    return undefined;
  }
}

function checkSeq(seq: unknown): number | undefined {
  if (seq !== undefined && (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0)) {
    throw new BadRequestError('invalid_seq', 'seq must be a non-negative integer');
  }
  return seq as number | undefined;
}

/**
 * A MessagePack message, bounded like a JSON one without unpacking it whole: array headers carry
 * their length, so a batch over the cap is refused from its header; otherwise each event's extent
 * is found by walking the encoding (no values are built), an event longer than
 * INGEST_MAX_EVENT_BYTES is refused, and events are unpacked one at a time with other work
 * between. For an envelope (a map with an `events` array) the other entries must be small.
 */
export async function decodeStreamBinary(data: Buffer, bounds: BodyBounds = DEFAULT_BOUNDS): Promise<StreamMessage> {
  const first = data[0];
  if (first === undefined) throw undecodable('an empty message');
  if (arrayLength(data, 0) !== undefined) {
    const { items, end } = await unpackEvents(data, 0, bounds);
    if (end !== data.length) throw undecodable('data after the end of the message');
    return { seq: undefined, items };
  }
  const map = mapLength(data, 0);
  if (map === undefined) return decodeStreamMessage(data, true);
  let pos = map.at;
  let events: number | undefined;
  let seq: unknown;
  let other = map.at;
  for (let i = 0; i < map.n; i++) {
    const keyEnd = skipValue(data, pos);
    const valueEnd = keyEnd < 0 ? -1 : skipValue(data, keyEnd);
    if (valueEnd < 0) throw undecodable('the message ends inside a value');
    if (keyIs(data, pos, keyEnd, 'events') && arrayLength(data, keyEnd) !== undefined) events = keyEnd;
    else {
      if (keyIs(data, pos, keyEnd, 'seq')) seq = unpackOne(data.subarray(keyEnd, valueEnd));
      other += valueEnd - pos;
    }
    pos = valueEnd;
  }
  if (pos !== data.length) throw undecodable('data after the end of the message');
  if (events === undefined) {
    // One event (or an envelope whose events are not an array, refused as before).
    if (data.length > bounds.maxEventBytes) throw new BadRequestError('event_too_large', `the message is one object over ${bounds.maxEventBytes} bytes; no valid event is that long`, 413);
    return decodeStreamMessage(data, true);
  }
  if (other > bounds.maxEventBytes) throw new BadRequestError('invalid_body', `the message besides its events is over ${bounds.maxEventBytes} bytes`);
  const checked = checkSeq(seq);
  try {
    return { seq: checked, items: (await unpackEvents(data, events, bounds)).items };
  } catch (err) {
    throw Object.assign(err as Error, { seq: checked });
  }
}

/** Whether the MessagePack value in [pos, end) is the string `name` (fixstr or str8), compared as bytes. */
function keyIs(d: Buffer, pos: number, end: number, name: string): boolean {
  const n = name.length;
  const at = d[pos] === (0xa0 | n) ? pos + 1 : d[pos] === 0xd9 && d[pos + 1] === n ? pos + 2 : -1;
  return at > 0 && end - at === n && d.toString('latin1', at, end) === name;
}

function undecodable(why: string): BadRequestError {
  return new BadRequestError('undecodable', `message is not valid MessagePack: ${why}`);
}

function unpackOne(bytes: Buffer): unknown {
  try {
    return unpack(bytes);
  } catch (err) {
    throw undecodable((err as Error).message);
  }
}

/** The events of the MessagePack array at `at`: counted from its header, measured, then unpacked one by one. */
async function unpackEvents(data: Buffer, at: number, bounds: BodyBounds): Promise<{ items: DecodedItem[]; end: number }> {
  const header = arrayLength(data, at)!;
  if (header.n > bounds.maxEvents) {
    throw new BadRequestError('too_many_events', `more than ${bounds.maxEvents} events in one message (the limit); split the batch`, 413);
  }
  const spans: number[] = [];
  let pos = header.at;
  for (let i = 0; i < header.n; i++) {
    const end = skipValue(data, pos);
    if (end < 0) throw undecodable('the message ends inside an event');
    if (end - pos > bounds.maxEventBytes) throw new BadRequestError('event_too_large', `an element is over ${bounds.maxEventBytes} bytes; no valid event is that long`, 413);
    spans.push(pos, end);
    pos = end;
  }
  const items: DecodedItem[] = [];
  const slicer = new Slicer();
  for (let i = 0; i < spans.length; i += 2) {
    items.push({ ok: true, value: unpackOne(data.subarray(spans[i], spans[i + 1])) });
    if ((i & 0x1fe) === 0) await slicer.maybeYield();
  }
  return { items, end: pos };
}

function arrayLength(d: Buffer, at: number): { n: number; at: number } | undefined {
  const t = d[at];
  if (t === undefined) return undefined;
  if (t >= 0x90 && t <= 0x9f) return { n: t & 0x0f, at: at + 1 };
  if (t === 0xdc && at + 3 <= d.length) return { n: d.readUInt16BE(at + 1), at: at + 3 };
  if (t === 0xdd && at + 5 <= d.length) return { n: d.readUInt32BE(at + 1), at: at + 5 };
  return undefined;
}

function mapLength(d: Buffer, at: number): { n: number; at: number } | undefined {
  const t = d[at];
  if (t === undefined) return undefined;
  if (t >= 0x80 && t <= 0x8f) return { n: t & 0x0f, at: at + 1 };
  if (t === 0xde && at + 3 <= d.length) return { n: d.readUInt16BE(at + 1), at: at + 3 };
  if (t === 0xdf && at + 5 <= d.length) return { n: d.readUInt32BE(at + 1), at: at + 5 };
  return undefined;
}

/** Where the MessagePack value at `pos` ends, without building it; -1 when the data ends first (or is invalid). */
export function skipValue(d: Buffer, pos: number): number {
  // Values still to skip; each step reads at least one byte, so the walk is bounded by the length.
  let pending = 1;
  const len = d.length;
  const uint = (bytes: number) => (pos + bytes > len ? -1 : bytes === 1 ? d[pos]! : bytes === 2 ? d.readUInt16BE(pos) : d.readUInt32BE(pos));
  while (pending > 0) {
    if (pos >= len) return -1;
    const t = d[pos++]!;
    pending--;
    if (t <= 0x7f || t >= 0xe0 || t === 0xc0 || t === 0xc2 || t === 0xc3) continue;
    if (t <= 0x8f) pending += 2 * (t & 0x0f);
    else if (t <= 0x9f) pending += t & 0x0f;
    else if (t <= 0xbf) pos += t & 0x1f;
    else {
      let n: number;
      switch (t) {
        case 0xc4: case 0xd9: n = uint(1); if (n < 0) return -1; pos += 1 + n; break;
        case 0xc5: case 0xda: n = uint(2); if (n < 0) return -1; pos += 2 + n; break;
        case 0xc6: case 0xdb: n = uint(4); if (n < 0) return -1; pos += 4 + n; break;
        case 0xc7: n = uint(1); if (n < 0) return -1; pos += 2 + n; break;
        case 0xc8: n = uint(2); if (n < 0) return -1; pos += 3 + n; break;
        case 0xc9: n = uint(4); if (n < 0) return -1; pos += 5 + n; break;
        case 0xcc: case 0xd0: pos += 1; break;
        case 0xcd: case 0xd1: pos += 2; break;
        case 0xca: case 0xce: case 0xd2: pos += 4; break;
        case 0xcb: case 0xcf: case 0xd3: pos += 8; break;
        case 0xd4: pos += 2; break;
        case 0xd5: pos += 3; break;
        case 0xd6: pos += 5; break;
        case 0xd7: pos += 9; break;
        case 0xd8: pos += 17; break;
        case 0xdc: n = uint(2); if (n < 0) return -1; pos += 2; pending += n; break;
        case 0xdd: n = uint(4); if (n < 0) return -1; pos += 4; pending += n; break;
        case 0xde: n = uint(2); if (n < 0) return -1; pos += 2; pending += 2 * n; break;
        case 0xdf: n = uint(4); if (n < 0) return -1; pos += 4; pending += 2 * n; break;
        default: return -1; // 0xc1: never used
      }
    }
  }
  return pos > len ? -1 : pos;
}

export function decodeStreamMessage(data: Buffer, binary: boolean): StreamMessage {
  let value: unknown;
  try {
    value = binary ? unpack(data) : JSON.parse(data.toString('utf8'));
  } catch (err) {
    throw new BadRequestError('undecodable', `message is not valid ${binary ? 'MessagePack' : 'JSON'}: ${(err as Error).message}`);
  }
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && 'events' in value) {
    const { seq, events } = value as { seq?: unknown; events: unknown };
    return { seq: checkSeq(seq), items: toItems(events) };
  }
  return { seq: undefined, items: toItems(value) };
}

function toItems(value: unknown): DecodedItem[] {
  if (Array.isArray(value)) return value.map((v) => ({ ok: true, value: v }));
  if (value !== null && typeof value === 'object') return [{ ok: true, value }];
  throw new BadRequestError('invalid_body', 'expected an array of events or one event object');
}
