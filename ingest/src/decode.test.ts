import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pack } from 'msgpackr';
import { BadRequestError } from '@afterglow/core';
import { decodeJsonBody, decodeNdjsonBody, decodeStreamMessage } from './decode.js';

test('JSON bodies: an array, or one object', () => {
  assert.equal(decodeJsonBody(Buffer.from('[{"a":1},{"a":2}]')).length, 2);
  assert.equal(decodeJsonBody(Buffer.from('{"a":1}')).length, 1);
});

test('a JSON body that does not parse is refused whole', () => {
  assert.throws(() => decodeJsonBody(Buffer.from('[{"a":1},')), (e: unknown) => e instanceof BadRequestError && e.code === 'invalid_json');
  assert.throws(() => decodeJsonBody(Buffer.from('42')), (e: unknown) => e instanceof BadRequestError && e.code === 'invalid_body');
});

test('NDJSON: a bad line is rejected alone, blank lines are skipped', () => {
  const items = decodeNdjsonBody(Buffer.from('{"a":1}\n\n{oops\r\n{"a":3}'));
  assert.equal(items.length, 3);
  assert.deepEqual(items.map((i) => i.ok), [true, false, true]);
});

test('stream messages: envelope with seq, bare array, MessagePack', () => {
  const env = decodeStreamMessage(Buffer.from('{"seq":7,"events":[{"a":1}]}'), false);
  assert.equal(env.seq, 7);
  assert.equal(env.items.length, 1);
  assert.equal(decodeStreamMessage(Buffer.from('[{"a":1},{"a":2}]'), false).seq, undefined);
  const bin = decodeStreamMessage(pack({ seq: 3, events: [{ a: 1 }, { a: 2 }] }), true);
  assert.equal(bin.seq, 3);
  assert.equal(bin.items.length, 2);
  assert.throws(() => decodeStreamMessage(Buffer.from('{"seq":-1,"events":[]}'), false), /seq/);
  assert.throws(() => decodeStreamMessage(Buffer.from([0x92, 0x01]), true), (e: unknown) => e instanceof BadRequestError && e.code === 'undecodable');
});
