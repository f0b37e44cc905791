import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ulid } from '@afterglow/core';
import { eventually, uniqueName } from '@afterglow/testkit/services';
import { morePasses, postAll, startApp, waitForSinkDrained, type TestApp } from './support.js';

/**
 * Trigger rules on frequency and on cost per result, end to end on the embedded adapters: live
 * impressions with viewer ids, history imported for earlier days, daily spend imported; the rules
 * fire for the creative seen too often and the one whose CPA tripled against its own history, and
 * never for their steady neighbours, however many more passes the engine makes.
 */
const DAY = 86_400_000;

describe('frequency and cost-per-result triggers', () => {
  let app: TestApp;
  const tenant = uniqueName('cost-trig');
  const campaign = 'cpt';

  before(async () => {
    app = await startApp(
      { LIVE_FLUSH_MS: '200', TRIGGERS_EVAL_MS: '250', TRIGGERS_RULES_REFRESH_MS: '300', TRIGGERS_COST_REFRESH_MS: '1000' },
      ['ingest', 'stream', 'live'],
    );
  });
  after(async () => {
    await app?.close();
  });


  it('fires for the creative seen too often and the one whose CPA tripled, and for no other', async () => {
    const now = Date.now();
    const today = new Date(now).toISOString().slice(0, 10);
    const ev = (asset: string, kind: string, at: number, viewer?: string, value = 1) => ({
      event_id: ulid(at),
      tenant_id: tenant,
      campaign_id: campaign,
      asset_id: asset,
      kind,
      value,
      occurred_at: at,
      ...(viewer !== undefined && { viewer_id: viewer }),
    });
    // Today, live: `tired` shown 5 times to each of 120 people, `fresh` once to each of 300.
    const live: Record<string, unknown>[] = [];
    const recentAt = Math.max(Date.parse(`${today}T00:00:00Z`) + 1000, now - 60_000);
    for (let v = 0; v < 120; v++) for (let k = 0; k < 5; k++) live.push(ev('tired', 'impression', recentAt, `t${v}`));
    for (let v = 0; v < 300; v++) live.push(ev('fresh', 'impression', recentAt, `f${v}`));
    // `pricey` and `steady` were both at a CPA of 5 for ten earlier days; today `pricey` bought 40
    // conversions for 600 (a CPA of 15) and `steady` 120 for 600 (still 5).
    for (const asset of ['pricey', 'steady']) for (let i = 0; i < 200; i++) live.push(ev(asset, 'impression', recentAt));
    for (let i = 0; i < 40; i++) live.push(ev('pricey', 'conversion', recentAt));
    for (let i = 0; i < 120; i++) live.push(ev('steady', 'conversion', recentAt));
    const earlier: Record<string, unknown>[] = [];
    const spend: Record<string, unknown>[] = [];
    for (let d = 5; d < 15; d++) {
      const at = now - d * DAY;
      const date = new Date(at).toISOString().slice(0, 10);
      for (const asset of ['pricey', 'steady']) {
        for (let i = 0; i < 20; i++) earlier.push(ev(asset, 'conversion', at));
        spend.push({ campaign_id: campaign, asset_id: asset, date, spend: 100 });
      }
    }
    spend.push({ campaign_id: campaign, asset_id: 'pricey', date: today, spend: 600 }, { campaign_id: campaign, asset_id: 'steady', date: today, spend: 600 });
    const imported = await app.request(tenant, '/v1/import/events', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(earlier) });
    assert.equal(imported.status, 200, await imported.clone().text());
    const spent = await app.request(tenant, `/v1/import/spend?tenant_id=${tenant}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spend) });
    assert.equal(spent.status, 200, await spent.clone().text());
    await postAll(app.running.url, live);
    await waitForSinkDrained(app.running);

    const rule = async (id: string, kind: string, params: Record<string, unknown>) => {
      const res = await app.request(tenant, `/v1/triggers/rules/${id}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ tenant_id: tenant, campaign_id: campaign, kind, params, cooldown_ms: 3_600_000 }),
      });
      assert.equal(res.status, 200, await res.clone().text());
    };
    await rule('too-often', 'frequency', { max_frequency: 4, min_reach: 100, days: 1, debounce_evals: 2 });
    await rule('too-dear', 'cost_per_result', { factor: 2, recent_days: 3, baseline_days: 28, min_results: 10, debounce_evals: 2 });
    // Out-of-bounds parameters are refused with the field named.
    const bad = await app.request(tenant, '/v1/triggers/rules/bad', {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ tenant_id: tenant, kind: 'frequency', params: { max_frequency: 1 } }),
    });
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { message: string }).message, /params\.max_frequency/);

    type Firing = { rule_id: string; kind: string; asset_id: string; reason: string; numbers: Record<string, number | string | null> };
    const log = async (): Promise<Firing[]> => {
      const res = await app.request(tenant, `/v1/triggers/log?tenant_id=${tenant}&campaign_id=${campaign}`);
      assert.equal(res.status, 200);
      return ((await res.json()) as { firings: Firing[] }).firings;
    };
    const firings = await eventually(async () => {
      const f = await log();
      return f.length >= 2 ? f : undefined;
    }, 60_000, 250);
    // More passes change nothing: the steady creatives never fire, the fired ones do not fire again.
    await morePasses(app.running, 8);
    const final = (await log()).map((f) => [f.rule_id, f.kind, f.asset_id]).sort();
    assert.deepEqual(final, [['too-dear', 'cost_per_result', 'pricey'], ['too-often', 'frequency', 'tired']]);
    const byRule = Object.fromEntries(firings.map((f) => [f.rule_id, f]));
    assert.deepEqual([byRule['too-often']!.numbers.reach, byRule['too-often']!.numbers.impressions, byRule['too-often']!.numbers.frequency], [120, 600, 5]);
    assert.match(byRule['too-often']!.reason, /120 people saw it 5\.00 times each/);
    const dear = byRule['too-dear']!.numbers;
    assert.deepEqual([dear.baseline_cost_per_result, dear.recent_cost_per_result, dear.ratio, dear.currency], [5, 15, 3, 'USD']);
  });
});
