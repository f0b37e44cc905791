// The trigger-rule editor in a real browser (Debian's chromium through playwright-core) against a real
// Afterglow on the embedded defaults: an admin creates a rule through the form (its checks first, then
// the server's egress refusal under the webhook field), sees it fire, acknowledges the firing, snoozes
// the rule and checks it no longer fires while an identical rule does; un-snoozed, it fires. A read-only
// key sees no admin actions. Screenshots (1366x768 and 390x844, light and dark) go to DASH_SHOTS
// (default artifacts/dashboard-rules/, gitignored).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { ulid, type EngagementEvent } from '@afterglow/core';
import { eventually, skipOption, uniqueName } from '@afterglow/testkit/services';
import { morePasses, postAll, startApp, waitForSinkDrained, type TestApp } from './support.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium && process.env.CI) throw new Error(`${CHROMIUM} is missing: CI must install Debian's chromium (apt-get install -y chromium)`);
const SHOTS = path.resolve(process.env.DASH_SHOTS ?? path.join('artifacts', 'dashboard-rules'));
const DESKTOP = { width: 1366, height: 768 };
const PHONE = { width: 390, height: 844 };
const T = uniqueName('ui-rules');
const CAMPAIGN = 'ui-spike';

/** Quiet minutes, then a burst of shares on `asset`: a velocity_spike rule on the campaign holds. */
function spike(asset: string): EngagementEvent[] {
  const now = Date.now();
  const ev = (kind: EngagementEvent['kind'], at: number): EngagementEvent => ({ event_id: ulid(at), tenant_id: T, campaign_id: CAMPAIGN, asset_id: asset, kind, value: 1, occurred_at: at, received_at: 0 });
  const events: EngagementEvent[] = [];
  for (let m = 1; m <= 14; m++) for (let i = 0; i < 20; i++) events.push(ev(i < 5 ? 'share' : 'impression', now - m * 60_000 - i * 1_000));
  for (let i = 0; i < 100; i++) events.push(ev('share', now - i * 200), ev('impression', now - i * 200));
  return events;
}

describe('trigger rules in a browser', { skip: skipOption(!hasChromium && `${CHROMIUM} not installed (apt-get install -y chromium)`) }, () => {
  let app: TestApp;
  let browser: Browser;
  let page: Page;
  const errors: string[] = [];
  const keyFor = async (scopes: ('read' | 'admin')[]) => encodeURIComponent(((await app.authHeaders(T, scopes)).authorization ?? '').replace(/^Bearer /, ''));
  const open = async (scopes: ('read' | 'admin')[] = ['read', 'admin']) => page.goto(`${app.running.url}/?tenant=${T}#/triggers&key=${await keyFor(scopes)}`);

  async function shots(name: string): Promise<void> {
    for (const [size, vp] of [['desktop', DESKTOP], ['phone', PHONE]] as const) {
      await page.setViewportSize(vp);
      for (const scheme of ['light', 'dark'] as const) {
        await page.emulateMedia({ colorScheme: scheme });
        await page.waitForTimeout(150);
        await page.screenshot({ path: path.join(SHOTS, `${name}-${size}-${scheme}.png`), fullPage: true });
      }
      // Nothing wider than the phone: no sideways scrolling.
      if (size === 'phone') {
        const overflow = await page.evaluate(() => (globalThis as any).document.documentElement.scrollWidth - (globalThis as any).innerWidth);
        assert.ok(overflow <= 0, `${name}: the page is ${overflow}px wider than the phone`);
      }
    }
    await page.emulateMedia({ colorScheme: 'light' });
    await page.setViewportSize(DESKTOP);
  }

  type Firing = { firing_id: string; rule_id: string; asset_id: string; acknowledged: { by: string } | null };
  async function log(): Promise<Firing[]> {
    const res = await app.request(T, `/v1/triggers/log?tenant_id=${T}&campaign_id=${CAMPAIGN}`);
    return ((await res.json()) as { firings: Firing[] }).firings;
  }
  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    [app, browser] = await Promise.all([
      startApp(
        {
          KAFKA_BROKERS: '',
          REDIS_URL: '',
          NATS_URL: '',
          LIVE_FLUSH_MS: '200',
          TRIGGERS_EVAL_MS: '250',
          TRIGGERS_RULES_REFRESH_MS: '500',
        },
        ['ingest', 'stream', 'live', 'dashboard'],
      ),
      chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
      }),
    ]);
    page = await browser.newPage({ viewport: DESKTOP, colorScheme: 'light' });
    page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
    page.on('console', (msg) => {
      if (msg.type() === 'error' && !/WebSocket|ERR_CONNECTION_REFUSED|Failed to load resource/.test(msg.text())) errors.push(`console: ${msg.text()}`);
    });
  });
  after(async () => {
    await browser?.close();
    await app?.close();
  });

  test('create a rule in the form, see it fire, acknowledge, snooze: it no longer fires while its twin does; un-snoozed it fires', { timeout: 180_000 }, async () => {
    await open();
    await page.locator('[data-testid=rules-empty]').waitFor();
    await page.locator('[data-testid=rule-new]').click();
    const editor = page.locator('[data-testid=rule-editor]');
    await editor.waitFor();

    // The form's own checks (the server's limits) before anything is sent.
    await page.fill('[data-testid=rule-id]', 'spike-ui');
    await page.selectOption('[data-testid=rule-kind]', 'velocity_spike');
    await page.fill('[data-testid=rule-campaign]', CAMPAIGN);
    await page.fill('[data-testid=rule-cooldown]', '0');
    await page.fill('[data-param=factor]', '1');
    await page.locator('[data-testid=rule-save]').click();
    await page.locator('#err-cooldown_ms').waitFor();
    assert.match((await page.locator('#err-cooldown_ms').textContent()) ?? '', /more than 0 and at most 30 days/);
    assert.match((await page.locator('#err-params-factor').textContent()) ?? '', /factor must be more than 1/);
    assert.equal(await page.locator('[data-testid=rule-id]').getAttribute('aria-invalid'), null);
    await shots('editor-checks');

    // Fixed; a webhook into the internal network: the server's egress refusal, in its words, under the field.
    await page.fill('[data-testid=rule-cooldown]', '60');
    await page.fill('[data-param=factor]', '3');
    await page.fill('[data-param=min_per_min]', '20');
    await page.fill('[data-param=min_impressions]', '0');
    await page.fill('[data-param=debounce_evals]', '1');
    await page.fill('[data-testid=rule-webhook]', 'http://10.0.0.7/hook');
    await page.locator('[data-testid=rule-save]').click();
    const refusal = page.locator('[data-testid=webhook-error]');
    await refusal.waitFor();
    assert.match((await refusal.textContent()) ?? '', /public addresses only/);
    await shots('editor-webhook-refused');
    assert.equal((await (await app.request(T, `/v1/triggers/rules?tenant_id=${T}`)).json() as { rules: unknown[] }).rules.length, 0, 'nothing saved');

    await page.fill('[data-testid=rule-webhook]', '');
    await page.locator('[data-testid=rule-save]').click();
    await page.locator('[data-rule=spike-ui]').first().waitFor();
    assert.equal(await editor.count(), 0, 'the editor closed');
    // What the form sent is what the server keeps.
    const saved = ((await (await app.request(T, `/v1/triggers/rules?tenant_id=${T}`)).json()) as { rules: { rule_id: string; kind: string; campaign_id: string; cooldown_ms: number; params: Record<string, number> }[] }).rules;
    assert.deepEqual(
      saved.map((r) => [r.rule_id, r.kind, r.campaign_id, r.cooldown_ms, r.params.factor, r.params.debounce_evals]),
      [['spike-ui', 'velocity_spike', CAMPAIGN, 3_600_000, 3, 1]],
    );
    // Its twin, for the check that a snoozed rule stays quiet while the condition holds.
    const twin = await app.request(T, '/v1/triggers/rules/spike-twin', {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ tenant_id: T, campaign_id: CAMPAIGN, kind: 'velocity_spike', cooldown_ms: 3_600_000, params: { factor: 3, min_per_min: 20, min_impressions: 0, debounce_evals: 1 } }),
    });
    assert.equal(twin.status, 200);

    // It fires.
    const first = spike('ad-1');
    assert.equal(await postAll(app.running.url, first, 2000), first.length);
    await waitForSinkDrained(app.running);
    const fired = await eventually(async () => (await log()).find((f) => f.rule_id === 'spike-ui' && f.asset_id === 'ad-1'), 60_000);
    await page.reload();
    const item = page.locator(`[data-testid=triggers-log] li[data-rule=spike-ui]`);
    await item.waitFor();

    // Acknowledge it from the log.
    await item.locator('[data-testid=ack-open]').click();
    await item.locator('input[autocomplete=name]').fill('Dana');
    await item.locator('[data-testid=ack-note]').fill('briefed a new variant');
    await item.locator('[data-testid=ack-submit]').click();
    await item.locator('[data-testid=acknowledged]').waitFor();
    assert.match((await item.locator('[data-testid=acknowledged]').textContent()) ?? '', /Acknowledged by\s+Dana.*briefed a new variant/s);
    assert.equal((await log()).find((f) => f.firing_id === fired.firing_id)?.acknowledged?.by, 'Dana');

    // Snooze it for an hour.
    const card = page.locator('[data-testid=rules-panel] li[data-rule=spike-ui]');
    await card.locator('[data-testid=snooze-1h]').click();
    await card.locator('[data-testid=snoozed-badge]').waitFor();
    assert.match((await card.locator('[data-testid=snooze-until]').textContent()) ?? '', /Snoozed until .*in (59|60) min/s);
    await shots('snoozed-and-acknowledged');

    // A new spike on another creative: the twin fires; two full evaluation passes later the snoozed rule has not.
    const second = spike('ad-2');
    assert.equal(await postAll(app.running.url, second, 2000), second.length);
    await waitForSinkDrained(app.running);
    await eventually(async () => ((await log()).some((f) => f.rule_id === 'spike-twin' && f.asset_id === 'ad-2') ? true : undefined), 60_000);
    await morePasses(app.running, 2);
    assert.deepEqual(
      (await log()).filter((f) => f.asset_id === 'ad-2').map((f) => f.rule_id),
      ['spike-twin'],
    );

    // Un-snoozed while the spike still holds: it fires for ad-2.
    await card.locator('[data-testid=rule-unsnooze]').click();
    await card.locator('[data-testid=snooze-1h]').waitFor();
    await eventually(async () => ((await log()).some((f) => f.rule_id === 'spike-ui' && f.asset_id === 'ad-2') ? true : undefined), 30_000);
    await page.reload();
    await page.locator('[data-testid=triggers-log] li[data-rule=spike-ui][data-acked=false]').waitFor();
    await shots('after-unsnooze');

    // From the log: snooze the twin for one creative only.
    const twinItem = page.locator('[data-testid=triggers-log] li[data-rule=spike-twin]').first();
    await twinItem.locator('[data-testid=snooze-asset]').click();
    const twinCard = page.locator('[data-testid=rules-panel] li[data-rule=spike-twin]');
    await twinCard.getByText(/Snoozed for asset ad-2 until/).waitFor();
    assert.equal(await twinCard.getAttribute('data-snoozed'), 'false', 'the rule as a whole is not snoozed');
    const twinSnoozes = ((await (await app.request(T, `/v1/triggers/rules?tenant_id=${T}`)).json()) as { rules: { rule_id: string; snoozes: { asset_id: string | null }[] }[] }).rules.find((r) => r.rule_id === 'spike-twin')!.snoozes;
    assert.deepEqual(twinSnoozes.map((s) => s.asset_id), ['ad-2']);

    // The custom snooze: until a chosen time.
    await card.locator('[data-testid=snooze-custom]').click();
    await card.locator('[data-testid=snooze-until-input]').waitFor();
    await shots('snooze-custom');
    await card.locator('[data-testid=snooze-apply]').click();
    await card.locator('[data-testid=snoozed-badge]').waitFor();
    assert.match((await card.locator('[data-testid=snooze-until]').textContent()) ?? '', /in (2 h 59 min|3 h 0 min)/);

    // Edit: the form opens with the rule's values; a changed cool-down is saved, the snooze stays.
    await card.locator('[data-testid=rule-edit]').click();
    await editor.waitFor();
    assert.equal(await page.locator('[data-testid=rule-id]').isDisabled(), true, 'the id of a rule is not edited');
    assert.equal(await page.locator('[data-testid=rule-cooldown]').inputValue(), '60');
    assert.equal(await page.locator('[data-param=factor]').inputValue(), '3');
    await page.fill('[data-testid=rule-cooldown]', '120');
    await page.locator('[data-testid=rule-save]').click();
    await editor.waitFor({ state: 'detached' });
    await card.getByText(/cool-down 2 h 0 min/).waitFor();
    const edited = ((await (await app.request(T, `/v1/triggers/rules?tenant_id=${T}`)).json()) as { rules: { rule_id: string; cooldown_ms: number; snoozes: unknown[] }[] }).rules.find((r) => r.rule_id === 'spike-ui')!;
    assert.deepEqual([edited.cooldown_ms, edited.snoozes.length], [7_200_000, 1]);

    // Delete, confirmed in place.
    const twinRow = page.locator('[data-testid=rules-panel] li[data-rule=spike-twin]');
    await twinRow.locator('[data-testid=rule-delete]').click();
    await twinRow.locator('[data-testid=rule-delete-yes]').click();
    await twinRow.waitFor({ state: 'detached' });
    const left = ((await (await app.request(T, `/v1/triggers/rules?tenant_id=${T}`)).json()) as { rules: { rule_id: string }[] }).rules.map((r) => r.rule_id);
    assert.deepEqual(left, ['spike-ui']);
    assert.deepEqual(errors, []);
  });

  test('a read-only key sees the rules and the log without any admin action', async () => {
    await open(['read']);
    await page.locator('[data-testid=rules-panel] li[data-rule=spike-ui]').waitFor();
    await page.locator('[data-testid=triggers-log] li').first().waitFor();
    for (const admin of ['rule-new', 'rule-edit', 'rule-delete', 'snooze-1h', 'rule-unsnooze', 'ack-open', 'snooze-asset']) {
      assert.equal(await page.locator(`[data-testid=${admin}]`).count(), 0, `${admin} is not offered`);
    }
    await shots('read-only');
    assert.deepEqual(errors, []);
  });
});
