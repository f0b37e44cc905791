import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ulid } from '@afterglow/core';
import { eventually, uniqueName } from '@afterglow/testkit/services';
import { morePasses, postAll, startApp, waitForSinkDrained, type TestApp } from './support.js';

/**
 * Video fatigue rules end to end on the embedded adapters: plays over HTTP, half an hour ago and in
 * the last minute; the hook-rate and completion rules fire for the video whose recent plays fell
 * off against its own earlier ones, never for the steady one (a small, insignificant dip) nor for
 * the one with too few plays, however many more passes the engine makes.
 */
describe('hook-rate and completion triggers', () => {
  let app: TestApp;
  const tenant = uniqueName('vid-trig');
  const campaign = 'vtr';

  before(async () => {
    app = await startApp(
      { LIVE_FLUSH_MS: '200', TRIGGERS_EVAL_MS: '250', TRIGGERS_RULES_REFRESH_MS: '300', TRIGGERS_COST_REFRESH_MS: '1000' },
      ['ingest', 'stream', 'live'],
    );
  });
  after(async () => {
    await app?.close();
  });


  it('fires for the video whose hook and completion rates fell, and for no other', async () => {
    const now = Date.now();
    const ev = (asset: string, kind: string, at: number, value?: number) => ({
      event_id: ulid(at),
      tenant_id: tenant,
      campaign_id: campaign,
      asset_id: asset,
      kind,
      occurred_at: at,
      ...(value !== undefined && { value }),
    });
    const events: Record<string, unknown>[] = [];
    const plays = (asset: string, at: number, n: number, hooked: number, completed: number) => {
      for (let i = 0; i < n; i++) {
        events.push(ev(asset, 'video_start', at));
        if (i < hooked) events.push(ev(asset, 'video_seconds', at, 3));
        if (i < completed) events.push(ev(asset, 'video_complete', at));
      }
    };
    const earlier = now - 30 * 60_000;
    const recent = now - 60_000;
    // Half an hour ago both held 80 % past 3 s and 50 % to the end.
    plays('tiring', earlier, 200, 160, 100);
    plays('steady', earlier, 200, 160, 100);
    plays('few', earlier, 200, 160, 100);
    // In the last minute: `tiring` 30 % / 10 %; `steady` 75 % / 47.5 % (a dip under the 20 % margin); `few` too few plays.
    plays('tiring', recent, 200, 60, 20);
    plays('steady', recent, 200, 150, 95);
    plays('few', recent, 20, 0, 0);
    // The engine judges the campaign's live assets: each video was also shown just now.
    for (const asset of ['tiring', 'steady', 'few']) for (let i = 0; i < 50; i++) events.push(ev(asset, 'impression', recent));
    await postAll(app.running.url, events);
    await waitForSinkDrained(app.running);

    const rule = async (id: string, kind: string, params: Record<string, unknown>) => {
      const res = await app.request(tenant, `/v1/triggers/rules/${id}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ tenant_id: tenant, campaign_id: campaign, kind, params, cooldown_ms: 3_600_000 }),
      });
      assert.equal(res.status, 200, await res.clone().text());
    };
    const common = { recent_minutes: 5, baseline_hours: 1, min_starts: 100, drop: 0.2, debounce_evals: 2 };
    await rule('hook-fade', 'hook_rate_drop', common);
    await rule('finish-fade', 'completion_drop', common);
    const bad = await app.request(tenant, '/v1/triggers/rules/bad', {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ tenant_id: tenant, kind: 'hook_rate_drop', params: { drop: 1.5 } }),
    });
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { message: string }).message, /params\.drop/);

    type Firing = { rule_id: string; kind: string; asset_id: string; reason: string; numbers: Record<string, number | string | null> };
    const log = async (): Promise<Firing[]> => {
      const res = await app.request(tenant, `/v1/triggers/log?tenant_id=${tenant}&campaign_id=${campaign}`);
      assert.equal(res.status, 200);
      return ((await res.json()) as { firings: Firing[] }).firings;
    };
    const firings = await eventually(
      async () => {
        const f = await log();
        return f.length >= 2 ? f : undefined;
      },
      60_000,
      250,
    );
    await morePasses(app.running, 8);
    const final = (await log()).map((f) => [f.rule_id, f.kind, f.asset_id]).sort();
    assert.deepEqual(final, [
      ['finish-fade', 'completion_drop', 'tiring'],
      ['hook-fade', 'hook_rate_drop', 'tiring'],
    ]);
    const byRule = Object.fromEntries(firings.map((f) => [f.rule_id, f]));
    const hook = byRule['hook-fade']!.numbers;
    assert.deepEqual([hook.recent_rate, hook.recent_starts, hook.earlier_rate, hook.earlier_starts, hook.relative_drop], [0.3, 200, 0.8, 200, 0.625]);
    assert.ok(Number(hook.p_value) < 0.01);
    assert.match(byRule['hook-fade']!.reason, /hook rate fell to 30\.0 % .* from 80\.0 %/);
    const done = byRule['finish-fade']!.numbers;
    assert.deepEqual([done.recent_rate, done.earlier_rate, done.relative_drop], [0.1, 0.5, 0.8]);
  });
});
