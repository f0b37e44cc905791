import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pack } from 'msgpackr';
import { BadRequestError } from '@afterglow/core';
import { BodyScanner, decodeJsonBody, decodeNdjsonBody, decodeStreamBinary, decodeStreamMessage, decodeStreamText, scanBody, skipValue } from './decode.js';

const code = (c: string) => (e: unknown) => e instanceof BadRequestError && e.code === c;

test('JSON bodies: an array, or one object', async () => {
  assert.equal((await decodeJsonBody(Buffer.from('[{"a":1},{"a":2}]'))).length, 2);
  assert.equal((await decodeJsonBody(Buffer.from('{"a":1}'))).length, 1);
  assert.equal((await decodeJsonBody(Buffer.from(' [ ] '))).length, 0);
  assert.deepEqual((await decodeJsonBody(Buffer.from('[{"a":"x,]}\\"["},[1,{"b":[2]}]]'))).map((i) => i.ok && i.value), [{ a: 'x,]}"[' }, [1, { b: [2] }]]);
  assert.deepEqual((await decodeJsonBody(Buffer.from('\ufeff[{"a":1}]'))).length, 1, 'a leading BOM is skipped');
});

test('a JSON body that does not parse is refused whole', async () => {
  for (const bad of ['[{"a":1},', '[1,]', '[,1]', '[1 2]', '[1}', '[1]]', '[1] x', '', 'nope', '{"a":1', '[{"a":1]']) {
    await assert.rejects(decodeJsonBody(Buffer.from(bad)), code('invalid_json'), bad);
  }
  await assert.rejects(decodeJsonBody(Buffer.from('42')), code('invalid_body'));
  await assert.rejects(decodeJsonBody(Buffer.from('"x"')), code('invalid_body'));
});

test('large arrays parse in batches to the same values', async () => {
  const events = Array.from({ length: 5000 }, (_, i) => ({ i, s: 'x'.repeat(i % 200), n: [i, { q: '"]' }] }));
  const items = await decodeJsonBody(Buffer.from(JSON.stringify(events)));
  assert.deepEqual(items.map((i) => i.ok && i.value), events);
});

test('NDJSON: a bad line is rejected alone, blank lines are skipped', async () => {
  const items = await decodeNdjsonBody(Buffer.from('{"a":1}\n\n{oops\r\n{"a":3}'));
  assert.equal(items.length, 3);
  assert.deepEqual(items.map((i) => i.ok), [true, false, true]);
  assert.equal((await decodeNdjsonBody(Buffer.from('\ufeff{"a":1}\r\n \t\r\n'))).length, 1);
});

test('NDJSON: past maxBadLines the request is refused whole, naming the first bad line', async () => {
  const body = Buffer.from(`{"a":1}\n\n${'x\n'.repeat(20)}`);
  await assert.rejects(decodeNdjsonBody(body, { maxEvents: 100, maxBadLines: 5, maxEventBytes: 1024 }), (e: unknown) => {
    return e instanceof BadRequestError && e.code === 'too_many_bad_lines' && /first is line 3:/.test(e.message);
  });
});

test('the scan counts events before any parsing and stops at the cap', () => {
  const bounds = { maxEvents: 3, maxBadLines: 10, maxEventBytes: 100 };
  assert.equal(scanBody(Buffer.from('a\n\nb\n  \nc\n'), 'ndjson', bounds).count, 3);
  assert.throws(() => scanBody(Buffer.from('a\nb\nc\nd'), 'ndjson', bounds), code('too_many_events'));
  assert.equal(scanBody(Buffer.from('[1,[2,3],{"a":[4,5]}]'), 'json', bounds).count, 3);
  assert.throws(() => scanBody(Buffer.from('[1,2,3,4]'), 'json', bounds), code('too_many_events'));
  // Streamed in one-byte chunks, the scan stops at the fourth element: nothing after it is read.
  const s = new BodyScanner('ndjson', bounds);
  const body = Buffer.from('x\n'.repeat(1000));
  let fed = 0;
  assert.throws(() => {
    for (; fed < body.length; fed++) s.push(body.subarray(fed, fed + 1));
  }, code('too_many_events'));
  assert.ok(fed < 10);
});

test('one element or line longer than any event is refused unparsed', () => {
  const bounds = { maxEvents: 10, maxBadLines: 10, maxEventBytes: 100 };
  assert.throws(() => scanBody(Buffer.from(`["${'x'.repeat(200)}"]`), 'json', bounds), code('event_too_large'));
  assert.throws(() => scanBody(Buffer.from(`{"a":"${'x'.repeat(200)}"}`), 'json', bounds), code('event_too_large'));
  assert.throws(() => scanBody(Buffer.from(`{}\n${'x'.repeat(200)}\n{}`), 'ndjson', bounds), (e: unknown) => code('event_too_large')(e) && /line 2/.test((e as Error).message));
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

test('stream text messages are bounded like bodies: the events array of an envelope is counted in place', async () => {
  const bounds = { maxEvents: 3, maxBadLines: 10, maxEventBytes: 200 };
  const env = await decodeStreamText(Buffer.from('{"seq":7,"events":[{"a":"],"},{"b":[1,2]}],"x":{"events":1}}'), bounds);
  assert.deepEqual([env.seq, env.items.map((i) => i.ok && i.value)], [7, [{ a: '],' }, { b: [1, 2] }]]);
  assert.deepEqual((await decodeStreamText(Buffer.from(' {"events" : [] , "seq":1}'), bounds)).seq, 1);
  assert.equal((await decodeStreamText(Buffer.from('[{"a":1},{"a":2}]'), bounds)).items.length, 2);
  assert.deepEqual((await decodeStreamText(Buffer.from('{"a":1}'), bounds)).items.length, 1);
  // Refused from the count, before parsing; the envelope besides its events must be small.
  await assert.rejects(decodeStreamText(Buffer.from(`{"seq":4,"events":[${'{},'.repeat(10)}{}]}`), bounds), (e: unknown) => code('too_many_events')(e) && (e as { seq?: number }).seq === 4);
  await assert.rejects(decodeStreamText(Buffer.from(`{"seq":1,"pad":"${'x'.repeat(300)}","events":[]}`), bounds), code('invalid_body'));
  // The same refusals as before for the rest.
  await assert.rejects(decodeStreamText(Buffer.from('{"seq":-1,"events":[]}'), bounds), code('invalid_seq'));
  await assert.rejects(decodeStreamText(Buffer.from('{"seq":1,"events":5}'), bounds), code('invalid_body'));
  await assert.rejects(decodeStreamText(Buffer.from('{"seq":1,"events":[1,}'), bounds), code('undecodable'));
  await assert.rejects(decodeStreamText(Buffer.from('this is not json'), bounds), code('undecodable'));
  await assert.rejects(decodeStreamText(Buffer.from('42'), bounds), code('invalid_body'));
});

test('MessagePack messages: counted from array headers, events measured by walking, then unpacked one by one', async () => {
  const bounds = { maxEvents: 3, maxBadLines: 10, maxEventBytes: 200 };
  const events = [{ a: 1, s: 'x', n: [1, 2, { b: null }] }, { t: true, f: 1.5, big: 2 ** 40, neg: -3, bin: Buffer.from([1, 2]) }];
  const env = await decodeStreamBinary(pack({ seq: 9, events, other: 'ok' }), bounds);
  assert.deepEqual([env.seq, env.items.map((i) => i.ok && i.value)], [9, events]);
  assert.deepEqual((await decodeStreamBinary(pack(events), bounds)).items.map((i) => i.ok && i.value), events);
  assert.deepEqual((await decodeStreamBinary(pack({ a: 1 }), bounds)).items.map((i) => i.ok && i.value), [{ a: 1 }]);
  // Every value's extent, for all of MessagePack's types.
  for (const v of [0, -1, 255, 65_536, 2 ** 33, -(2 ** 33), 1.25, 'é'.repeat(40), 'x'.repeat(300), 'y'.repeat(70_000), Buffer.alloc(300), null, true, new Date(0), Array(20).fill(1), Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, i]))]) {
    const b = pack(v);
    assert.equal(skipValue(Buffer.concat([b, Buffer.from([0xc0])]), 0), b.length, String(v).slice(0, 20));
    assert.equal(skipValue(b.subarray(0, b.length - 1), 0), -1);
  }
  // Refused from the header, before walking or unpacking anything: 4 million entries claimed, 5 bytes sent.
  await assert.rejects(decodeStreamBinary(Buffer.from([0xdd, 0x00, 0x3d, 0x09, 0x00]), bounds), code('too_many_events'));
  const many = Buffer.concat([Buffer.from([0x82, 0xa3, 0x73, 0x65, 0x71, 0x05, 0xa6, ...Buffer.from('events'), 0xdc, 0x00, 0x04]), Buffer.alloc(4, 0x80)]);
  await assert.rejects(decodeStreamBinary(many, bounds), (e: unknown) => code('too_many_events')(e) && (e as { seq?: number }).seq === 5);
  await assert.rejects(decodeStreamBinary(pack([{ a: 'x'.repeat(300) }]), bounds), code('event_too_large'));
  await assert.rejects(decodeStreamBinary(pack({ seq: 1, pad: 'x'.repeat(300), events: [] }), bounds), code('invalid_body'));
  await assert.rejects(decodeStreamBinary(pack({ seq: -1, events: [] }), bounds), code('invalid_seq'));
  await assert.rejects(decodeStreamBinary(Buffer.from([0x92, 0x01]), bounds), code('undecodable'));
  await assert.rejects(decodeStreamBinary(Buffer.concat([pack([1]), Buffer.from([1])]), bounds), code('undecodable'));
  await assert.rejects(decodeStreamBinary(pack(5), bounds), code('invalid_body'));
});
