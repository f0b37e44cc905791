import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fmtShotRange, fmtVideoTime, shotAt, shotMaster, type ShotFacts } from '../app/src/lib/shots.ts';

const shot = (index: number, start: number, end: number, extra: Partial<ShotFacts> = {}): ShotFacts => ({ index, start, end, ...extra });

describe('video shots as the dashboard shows them', () => {
  it('formats times to the tenth of a second', () => {
    assert.equal(fmtVideoTime(0), '0:00.0');
    assert.equal(fmtVideoTime(1.64), '0:01.6');
    assert.equal(fmtVideoTime(75.25), '1:15.3');
    assert.equal(fmtShotRange({ start: 1.6, end: 3.2 }), '0:01.6–0:03.2');
  });

  it("takes a person's review over the engine's auto-tie, and says when nothing clears the threshold", () => {
    const candidates = [{ master_asset_id: 'm1', score: 0.9 }, { master_asset_id: 'm2', score: 0.4 }];
    assert.deepEqual(shotMaster(shot(0, 0, 1)), { kind: 'unranked' });
    assert.deepEqual(shotMaster(shot(0, 0, 1, { candidates, auto_tie: 'm1' })), { kind: 'auto', master: 'm1', score: 0.9 });
    assert.deepEqual(shotMaster(shot(0, 0, 1, { candidates, auto_tie: null })), { kind: 'none', best: { master: 'm1', score: 0.9 } });
    assert.deepEqual(shotMaster(shot(0, 0, 1, { candidates: [], auto_tie: null })), { kind: 'none', best: null });
    const review = { action: 'tie' as const, master_asset_id: 'm2', score: 0.4, decided_by: 'ana', decided_at: 1 };
    assert.deepEqual(shotMaster(shot(0, 0, 1, { candidates, auto_tie: 'm1', review })), { kind: 'reviewed', master: 'm2', score: 0.4, by: 'ana' });
    assert.deepEqual(shotMaster(shot(0, 0, 1, { candidates, auto_tie: 'm1', review: { ...review, action: 'no_sim', master_asset_id: null } })), { kind: 'reviewed_none', by: 'ana' });
  });

  it('finds the shot on screen', () => {
    const shots = [shot(0, 0, 1.6), shot(1, 1.6, 3.2), shot(2, 3.2, 4.4)];
    assert.equal(shotAt(shots, 0), 0);
    assert.equal(shotAt(shots, 1.59), 0);
    assert.equal(shotAt(shots, 1.6), 1);
    assert.equal(shotAt(shots, 4.4), 2);
    assert.equal(shotAt([], 1), null);
  });
});
