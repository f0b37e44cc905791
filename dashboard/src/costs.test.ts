import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Entity, WindowStats } from '@afterglow/core/live-protocol';
import { NO_COSTS, costCells, fmtReachError, type CostCells } from '../app/src/lib/costs.ts';
import { naturalDir, order, type Row } from '../app/src/lib/leaderboard.ts';
import { campaignQuery, parseCampaignState } from '../app/src/lib/view-state.ts';

/** The leaderboard's cost and reach columns: cells from the API's answers, and ranking on them. */

const costs = {
  from: '2026-06-01',
  to: '2026-06-30',
  assets: [
    { asset_id: 'a', currency: 'USD', spend: 100, impressions: 10_000, clicks: 100, conversions: 10, conversion_value: 250, cpm: 10, cpc: 1, cpa: 10, roas: 2.5 },
    { asset_id: 'a', currency: 'EUR', spend: 5, impressions: 0, clicks: 0, conversions: 0, conversion_value: 0, cpm: null, cpc: null, cpa: null, roas: 0 },
    { asset_id: 'b', currency: 'USD', spend: 60, impressions: 3000, clicks: 30, conversions: 2, conversion_value: 0, cpm: 20, cpc: 2, cpa: 30, roas: 0 },
  ],
  totals: [],
};
const reach = {
  from: '2026-06-01',
  to: '2026-06-30',
  reach: 900,
  impressions: 2000,
  frequency: 2000 / 900,
  reach_error: { exact: true, relative_standard_error: 0 },
  assets: [
    { asset_id: 'a', reach: 500, impressions: 1000, frequency: 2 },
    { asset_id: 'c', reach: 400, impressions: 1000, frequency: 2.5 },
  ],
};

test('cells: the main currency per asset (others named, never added), ROAS only where conversions carry value, reach joined', () => {
  const cells = costCells(costs, reach);
  assert.deepEqual(cells.get('a'), { currency: 'USD', spend: 100, cpm: 10, cpc: 1, cpa: 10, roas: 2.5, reach: 500, frequency: 2, otherCurrencies: ['EUR'] });
  assert.equal(cells.get('b')!.roas, null, 'no conversion value: no ROAS');
  assert.equal(cells.get('b')!.reach, null);
  assert.deepEqual([cells.get('c')!.spend, cells.get('c')!.reach], [null, 400]);
  assert.equal(costCells(null, null).size, 0);
  assert.equal(fmtReachError({ exact: true, relative_standard_error: 0 }), 'exact count');
  assert.equal(fmtReachError({ exact: false, relative_standard_error: 0.00287 }), 'estimate ± 0.6 % (95 %)');
});

test('ranking on a cost: cheapest first by default, rows without the figure after, unranked', () => {
  const cells = costCells(costs, reach);
  const row = (id: string, impressions: number, cost: CostCells = cells.get(id) ?? NO_COSTS): Row => ({
    id,
    entity: {} as Entity,
    w: { impressions, ctr: { enough: true } } as unknown as WindowStats,
    cost,
  });
  const rows = [row('a', 10), row('b', 20), row('c', 30), row('d', 40)];
  assert.equal(naturalDir('cpa'), 'asc');
  assert.equal(naturalDir('roas'), 'desc');
  const byCpa = order(rows, 'cpa', naturalDir('cpa'), { text: '', hideNotEnough: false });
  assert.deepEqual(byCpa.ids, ['a', 'b', 'd', 'c']);
  assert.deepEqual([...byCpa.rank], [['a', 1], ['b', 2]]);
  assert.deepEqual(order(rows, 'reach', 'desc', { text: '', hideNotEnough: true }).ids, ['a', 'c']);
  assert.deepEqual(order(rows, 'spend', 'desc', { text: '', hideNotEnough: false }).ids.slice(0, 2), ['a', 'b']);
  // The URL keeps a cost sort, and leaves out its natural direction.
  assert.equal(campaignQuery({ window: '1h', sort: 'cpa', dir: 'asc', q: '', hide: false }), '?sort=cpa');
  assert.deepEqual([parseCampaignState('?sort=cpa').sort, parseCampaignState('?sort=cpa').dir], ['cpa', 'asc']);
});
