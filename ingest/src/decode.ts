import { unpack } from 'msgpackr';
import { BadRequestError } from '@afterglow/core';

/** One item of a request: a decoded value, or a line that could not be decoded (NDJSON only). */
export type DecodedItem = { ok: true; value: unknown } | { ok: false; message: string };

const NDJSON_TYPES = new Set(['application/x-ndjson', 'application/ndjson', 'application/jsonl', 'application/x-jsonlines']);

export function isNdjson(contentType: string | undefined): boolean {
  return NDJSON_TYPES.has((contentType ?? '').split(';')[0]!.trim().toLowerCase());
}

/**
 * A JSON body is an array of events (or one event object). The whole body must parse; a body that
 * does not is refused as a unit, since no event boundaries can be trusted in it.
 */
export function decodeJsonBody(body: Buffer): DecodedItem[] {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new BadRequestError('invalid_json', `body is not valid JSON: ${(err as Error).message}`);
  }
  return toItems(value);
}

/**
 * NDJSON: one event per line. A line that does not parse is rejected on its own ('undecodable')
 * and every other line still counts — a bad line loses nothing else.
 */
export function decodeNdjsonBody(body: Buffer): DecodedItem[] {
  const items: DecodedItem[] = [];
  const text = body.toString('utf8');
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    const line = text.slice(start, end).trim();
    start = end + 1;
    if (line.length === 0) continue;
    try {
      items.push({ ok: true, value: JSON.parse(line) });
    } catch (err) {
      items.push({ ok: false, message: `line is not valid JSON: ${(err as Error).message}` });
    }
  }
  return items;
}

/** A WebSocket message: `{ seq, events }`, an array of events, or one event; JSON text or MessagePack. */
export interface StreamMessage {
  seq: number | undefined;
  items: DecodedItem[];
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
    if (seq !== undefined && (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0)) {
      throw new BadRequestError('invalid_seq', 'seq must be a non-negative integer');
    }
    return { seq: seq as number | undefined, items: toItems(events) };
  }
  return { seq: undefined, items: toItems(value) };
}

function toItems(value: unknown): DecodedItem[] {
  if (Array.isArray(value)) return value.map((v) => ({ ok: true, value: v }));
  if (value !== null && typeof value === 'object') return [{ ok: true, value }];
  throw new BadRequestError('invalid_body', 'expected an array of events or one event object');
}
