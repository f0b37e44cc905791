import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LiveKeys } from './keys.js';

test('entity keys: asked again (remembered) they are the keys the layout names, per tenant, kind, id and partition', () => {
  const keys = new LiveKeys('lv');
  for (let round = 0; round < 2; round++) {
    assert.equal(keys.asset('t1', 'ad:1'), 'lv:t1:a:ad%3A1');
    assert.equal(keys.entity('asset', 't1', 'ad:1', 3), 'lv:t1:a:ad%3A1');
    assert.equal(keys.entity('campaign', 't1', 'c 1', 0), 'lv:t1:c:c%201:p0');
    assert.equal(keys.entity('campaign', 't1', 'c 1', 7), 'lv:t1:c:c%201:p7');
    assert.equal(keys.entity('master', 't1', 'c 1', 7), 'lv:t1:m:c%201:p7');
    assert.equal(keys.entity('campaign', 't2', 'c 1', 7), 'lv:t2:c:c%201:p7');
    assert.equal(keys.asset('t:2', 'x'), 'lv:t%3A2:a:x');
    // Partitions past what is remembered still get their key.
    assert.equal(keys.entity('master', 't1', 'm', 5000), 'lv:t1:m:m:p5000');
  }
});

test('entity keys: past the memo bound the keys stay right (the memo starts again)', () => {
  const keys = new LiveKeys('lv');
  for (let i = 0; i < 210_000; i++) keys.asset('t', `a${i}`);
  assert.equal(keys.asset('t', 'a5'), 'lv:t:a:a5');
  assert.equal(keys.asset('t', 'a209999'), 'lv:t:a:a209999');
  assert.equal(keys.entity('campaign', 't', 'c', 1), 'lv:t:c:c:p1');
});
