import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AuthFailureBudget, clientKey } from './failures.js';

test('a token bucket per address: the burst, then refused until it refills', () => {
  let now = 0;
  const budget = new AuthFailureBudget({ perMin: 60, burst: 3, maxAddresses: 100 }, () => now);
  for (let i = 0; i < 3; i++) {
    assert.equal(budget.blocked('10.0.0.1'), 0);
    budget.fail('10.0.0.1');
  }
  assert.equal(budget.blocked('10.0.0.1'), 1_000, 'one failure a second refills');
  assert.equal(budget.blocked('10.0.0.2'), 0, 'another address has its own budget');
  now += 1_000;
  assert.equal(budget.blocked('10.0.0.1'), 0);
  assert.equal(budget.blocked('::ffff:10.0.0.1'), 0, 'an IPv4-mapped address is the same client');
});

test('the map is bounded: a spray of addresses evicts the least recently seen', () => {
  const budget = new AuthFailureBudget({ perMin: 60, burst: 1, maxAddresses: 1_000 });
  budget.fail('192.0.2.1');
  for (let i = 0; i < 5_000; i++) budget.fail(`198.51.${i >> 8}.${i & 255}`);
  assert.equal(budget.size, 1_000);
  assert.equal(budget.blocked('192.0.2.1'), 0, 'evicted: starts again with a full bucket');
  assert.ok(budget.blocked('198.51.19.135') > 0, 'a recent one is still over');
});

test('IPv6 clients are bucketed by /64; 0 per minute turns the budget off', () => {
  assert.equal(clientKey('2001:db8:1:2:aaaa::1'), clientKey('2001:db8:1:2:ffff:1:2:3'));
  assert.notEqual(clientKey('2001:db8:1:2::1'), clientKey('2001:db8:1:3::1'));
  assert.equal(clientKey('::1'), '0:0:0:0::/64');
  assert.equal(clientKey('127.0.0.1'), '127.0.0.1');
  const off = new AuthFailureBudget({ perMin: 0, burst: 1, maxAddresses: 10 });
  for (let i = 0; i < 10; i++) off.fail('10.0.0.1');
  assert.equal(off.blocked('10.0.0.1'), 0);
});
