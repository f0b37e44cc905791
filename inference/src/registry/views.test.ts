/**
 * The registry's tie rule over each ad's latest decision: the same sequences as the live role's
 * recorder test (stream/live/src/live/ties.test.ts), with the same masters expected.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TieDecision } from '@afterglow/core';
import type { StoredDecision } from './repository.js';
import { resolveMaster, tieSummaries } from './views.js';

function ledger() {
  const latest = new Map<string, StoredDecision>();
  let at = 1000;
  return {
    latest,
    decide(ad: string, action: TieDecision['action'], target?: string) {
      at++;
      latest.set(ad, { decision_id: `d${at}`, action, tenant_id: 't', ad_asset_id: ad, ...(target ? { target_asset_id: target } : {}), auto: false, decided_by: 'test', decided_at: at });
    },
    masters: (...ads: string[]) => ads.map((ad) => resolveMaster(ad, (id) => latest.get(id))),
  };
}

test('registry ties: a duplicate follows its original through tie, re-tie and untie', () => {
  const l = ledger();
  l.decide('b', 'duplicate', 'a');
  assert.deepEqual(l.masters('a', 'b'), [null, null]);
  l.decide('a', 'tie', 'm1');
  assert.deepEqual(l.masters('a', 'b'), ['m1', 'm1']);
  l.decide('a', 'tie', 'm2');
  assert.deepEqual(l.masters('a', 'b'), ['m2', 'm2']);
  l.decide('a', 'untie');
  assert.deepEqual(l.masters('a', 'b'), [null, null]);
  l.decide('a', 'tie', 'm1');
  l.decide('b', 'tie', 'm3');
  l.decide('a', 'tie', 'm2');
  assert.deepEqual(l.masters('a', 'b'), ['m2', 'm3']);
  const summary = tieSummaries(l.latest).get('b')!;
  assert.equal(summary.master_asset_id, 'm3');
  assert.equal(summary.duplicate_of, undefined);
});

test('registry ties: chains are followed and loops have no master', () => {
  const l = ledger();
  l.decide('c', 'duplicate', 'b');
  l.decide('b', 'duplicate', 'a');
  l.decide('a', 'tie', 'm1');
  assert.deepEqual(l.masters('a', 'b', 'c'), ['m1', 'm1', 'm1']);
  assert.equal(tieSummaries(l.latest).get('c')!.duplicate_of, 'b');
  l.decide('a', 'duplicate', 'c');
  assert.deepEqual(l.masters('a', 'b', 'c'), [null, null, null]);
  l.decide('a', 'tie', 'm2');
  assert.deepEqual(l.masters('a', 'b', 'c'), ['m2', 'm2', 'm2']);
  l.decide('c', 'no_sim');
  l.decide('a', 'tie', 'm1');
  assert.deepEqual(l.masters('a', 'b', 'c'), ['m1', 'm1', null]);
});
