/**
 * Webhook egress (SSRF), attacked through the real server: a tenant admin saves trigger rules whose
 * webhook_url points into the internal network, every spelling of it, and fires them with its own
 * events. Refused at save with 422 and a stable code where the URL says enough; refused on the
 * connected socket when DNS changes after the save (rebinding); never a redirect followed; and the
 * delivery log says only a coarse outcome (no open/closed/filtered port oracle).
 */
import assert from 'node:assert/strict';
import { lookup } from 'node:dns/promises';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { ulid, type EngagementEvent } from '@afterglow/core';
import { eventually, uniqueName } from '@afterglow/testkit/services';
import { postAll, startApp, waitForSinkDrained, type TestApp } from '../support.js';

interface Receiver {
  server: Server;
  port: number;
  hits: string[];
}

async function receiver(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<Receiver> {
  const hits: string[] = [];
  const server = createServer((req, res) => {
    hits.push(`${req.method} ${req.url}`);
    req.resume();
    req.on('end', () => handler(req, res));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port, hits };
}

/** A port nothing listens on (a listener opened and closed). */
async function closedPort(): Promise<number> {
  const r = await receiver(() => undefined);
  r.server.close();
  await once(r.server, 'close');
  return r.port;
}

/** Test DNS: names the test points where it likes (and re-points), the system resolver for the rest. */
function fakeDns(): { names: Map<string, string>; resolve: (host: string) => Promise<{ address: string; family: number }[]> } {
  const names = new Map<string, string>();
  return {
    names,
    async resolve(host) {
      const address = names.get(host);
      if (address) return [{ address, family: address.includes(':') ? 6 : 4 }];
      return lookup(host, { all: true, verbatim: true });
    },
  };
}

const APP_ENV = (extra: Record<string, string>) => ({
  KAFKA_BROKERS: '',
  REDIS_URL: '',
  NATS_URL: '',
  SINK_GROUP_ID: uniqueName('sink'),
  LIVE_GROUP_ID: uniqueName('live'),
  LIVE_KEY_PREFIX: uniqueName('live'),
  LIVE_FLUSH_MS: '200',
  TRIGGERS_GROUP_ID: uniqueName('trig'),
  TRIGGERS_EVAL_MS: '250',
  TRIGGERS_RULES_REFRESH_MS: '500',
  TRIGGERS_WEBHOOK_BACKOFF_MS: '50',
  TRIGGERS_WEBHOOK_MAX_ATTEMPTS: '2',
  TRIGGERS_WEBHOOK_TIMEOUT_MS: '1000',
  ...extra,
});

async function putRule(app: TestApp, tenant: string, ruleId: string, body: Record<string, unknown>) {
  const res = await app.request(tenant, `/v1/triggers/rules/${ruleId}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ tenant_id: tenant, kind: 'velocity_spike', params: { factor: 3, min_per_min: 20, min_impressions: 0 }, ...body }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** Events that make a velocity_spike rule on `campaign` hold: quiet minutes, then a burst of shares. */
async function spike(app: TestApp, tenant: string, campaign: string): Promise<void> {
  const now = Date.now();
  const asset = `${campaign}-viral`;
  const ev = (kind: EngagementEvent['kind'], at: number): EngagementEvent => ({ event_id: ulid(at), tenant_id: tenant, campaign_id: campaign, asset_id: asset, kind, value: 1, occurred_at: at, received_at: 0 });
  const events: EngagementEvent[] = [];
  for (let m = 1; m <= 14; m++) for (let i = 0; i < 20; i++) events.push(ev(i < 5 ? 'share' : 'impression', now - m * 60_000 - i * 1_000));
  for (let i = 0; i < 100; i++) events.push(ev('share', now - i * 200), ev('impression', now - i * 200));
  assert.equal(await postAll(app.running.url, events, 2000), events.length);
  await waitForSinkDrained(app.running);
}

type Delivery = { target: string; status: string; attempts: number; last_error: string | null; http_status: number | null };

/** The firings log's deliveries of a campaign once every target has a final outcome. */
async function finalDeliveries(app: TestApp, tenant: string, campaign: string, targets: number): Promise<Delivery[]> {
  return eventually(
    async () => {
      const res = await app.request(tenant, `/v1/triggers/log?tenant_id=${tenant}&campaign_id=${campaign}`);
      const firings = ((await res.json()) as { firings: { deliveries: Delivery[] }[] }).firings;
      const d = firings.flatMap((f) => f.deliveries);
      return d.length >= targets && d.every((x) => ['delivered', 'gave_up', 'refused', 'dropped'].includes(x.status)) ? d : undefined;
    },
    60_000,
    200,
  );
}

/** Every outcome the log may show a tenant: nothing that tells a refused connection from a timeout or a DNS failure. */
const COARSE = new Set(['', 'failed', 'refused_by_policy', 'http_3xx', 'http_4xx', 'http_5xx', 'queue full']);

describe('webhook egress, default policy (no allow-list, private addresses refused)', () => {
  let app: TestApp;
  let internal: Receiver;
  const dns = fakeDns();
  const tenant = uniqueName('tenant');

  before(async () => {
    internal = await receiver((_req, res) => {
      res.statusCode = 401; // an "open port" answer the old log leaked
      res.end();
    });
    app = await startApp(APP_ENV({}), ['ingest', 'stream', 'live'], { resolveHost: dns.resolve });
  });
  after(async () => {
    await app?.close();
    internal?.server.close();
  });

  test('internal targets are refused at save with 422 and a stable code', async () => {
    const port = internal.port;
    dns.names.set('internal.corp.test', '10.0.0.7');
    dns.names.set('metadata.test', '169.254.169.254');
    dns.names.set('mapped.test', '::ffff:127.0.0.1');
    dns.names.set('hooks.partner.test', '93.184.216.34');
    // Names the system maps to loopback (/etc/hosts), besides localhost.
    const hostsFile = (() => {
      try {
        return readFileSync('/etc/hosts', 'utf8');
      } catch {
        return '';
      }
    })();
    const loopbackNames = hostsFile
      .split('\n')
      .map((l) => l.replace(/#.*/, '').trim().split(/\s+/))
      .filter(([ip]) => ip && (ip.startsWith('127.') || ip === '::1'))
      .flatMap(([, ...names]) => names)
      .filter((n) => n && n !== 'localhost' && /^[a-z0-9.-]+$/i.test(n))
      .slice(0, 3);
    const attacks: [string, string][] = [
      [`http://127.0.0.1:${port}/hook`, 'webhook_address_refused'],
      [`http://localhost:${port}/hook`, 'webhook_address_refused'],
      [`http://localhost.:${port}/hook`, 'webhook_address_refused'],
      [`http://LocalHost:${port}/hook`, 'webhook_address_refused'],
      [`http://127.1:${port}/hook`, 'webhook_address_refused'],
      [`http://2130706433:${port}/hook`, 'webhook_address_refused'],
      [`http://0x7f.1:${port}/hook`, 'webhook_address_refused'],
      [`http://0177.0.0.1:${port}/hook`, 'webhook_address_refused'],
      [`http://[::1]:${port}/hook`, 'webhook_address_refused'],
      [`http://[::ffff:127.0.0.1]:${port}/hook`, 'webhook_address_refused'],
      [`http://0.0.0.0:${port}/hook`, 'webhook_address_refused'],
      ['http://169.254.169.254/latest/meta-data/iam/security-credentials/', 'webhook_address_refused'],
      ['http://[fd00:ec2::254]/latest/meta-data/', 'webhook_address_refused'],
      ['http://10.0.0.1/hook', 'webhook_address_refused'],
      ['http://192.168.1.1/hook', 'webhook_address_refused'],
      ['http://100.64.0.1/hook', 'webhook_address_refused'],
      ['http://internal.corp.test/hook', 'webhook_address_refused'],
      ['http://metadata.test/hook', 'webhook_address_refused'],
      ['http://mapped.test/hook', 'webhook_address_refused'],
      ['http://no-such-host.invalid/hook', 'webhook_address_refused'],
      ...loopbackNames.map((n): [string, string] => [`http://${n}:${port}/hook`, 'webhook_address_refused']),
      ['http://hooks.partner.test:6379/hook', 'webhook_port_refused'],
      ['http://hooks.partner.test:8123/?query=SELECT%201', 'webhook_port_refused'],
      ['http://hooks.partner.test:22/', 'webhook_port_refused'],
      ['gopher://hooks.partner.test:70/_x', 'webhook_scheme_refused'],
      ['file:///etc/passwd', 'webhook_scheme_refused'],
    ];
    const table: string[] = [];
    for (const [i, [url, code]] of attacks.entries()) {
      const r = await putRule(app, tenant, `ssrf-${i}`, { webhook_url: url });
      table.push(`${url} -> ${r.status} ${String(r.body.error)}`);
      assert.equal(r.status, 422, `${url}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error, code, url);
      assert.equal(typeof r.body.message, 'string');
    }
    console.log(`webhook save refusals:\n  ${table.join('\n  ')}`);
    // None of them was stored, and nothing reached the internal receiver.
    const listed = (await (await app.request(tenant, `/v1/triggers/rules?tenant_id=${tenant}`)).json()) as { rules: unknown[] };
    assert.equal(listed.rules.length, 0);
    assert.deepEqual(internal.hits, []);
    // A public target is accepted.
    const ok = await putRule(app, tenant, 'public', { webhook_url: 'https://hooks.partner.test/afterglow', enabled: false });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
  });

  test('a name that was public at save and points at loopback later (DNS rebinding) is refused on the socket; the log says only refused_by_policy', async () => {
    const campaign = uniqueName('rebind');
    dns.names.set('rebind.attacker.test', '93.184.216.34');
    await spike(app, tenant, campaign);
    // Saved while the name is public, disabled so it cannot fire before the switch.
    const url = `http://rebind.attacker.test:${internal.port}/hook`;
    const saved = await putRule(app, tenant, `rebind-${campaign}`, { campaign_id: campaign, webhook_url: url, enabled: false });
    assert.equal(saved.status, 200, JSON.stringify(saved.body));
    dns.names.set('rebind.attacker.test', '127.0.0.1');
    const enabled = await putRule(app, tenant, `rebind-${campaign}`, { campaign_id: campaign, webhook_url: url, enabled: true });
    // The save re-checks the URL: now refused there too.
    assert.equal(enabled.status, 422);
    assert.equal(enabled.body.error, 'webhook_address_refused');
    // The attacker's path: DNS switched between the save and the delivery.
    dns.names.set('rebind.attacker.test', '93.184.216.34');
    assert.equal((await putRule(app, tenant, `rebind-${campaign}`, { campaign_id: campaign, webhook_url: url, enabled: true })).status, 200);
    dns.names.set('rebind.attacker.test', '127.0.0.1');
    const [delivery] = await finalDeliveries(app, tenant, campaign, 1);
    assert.ok(delivery);
    assert.equal(delivery.status, 'refused');
    assert.equal(delivery.attempts, 1, 'a refusal is not retried');
    assert.equal(delivery.last_error, 'refused_by_policy');
    assert.equal(delivery.http_status, null);
    assert.deepEqual(internal.hits, [], 'nothing connected to the loopback receiver');
  });
});

describe('webhook egress with an allow-list (private allowed for the listed receivers only)', () => {
  let app: TestApp;
  let target: Receiver;
  let redirector: Receiver;
  let closed: number;
  let open: Receiver;
  const tenant = uniqueName('tenant');

  before(async () => {
    target = await receiver((_req, res) => res.end('internal data'));
    redirector = await receiver((_req, res) => {
      res.statusCode = 302;
      res.setHeader('location', `http://127.0.0.1:${target.port}/internal`);
      res.end();
    });
    open = await receiver((_req, res) => {
      res.statusCode = 401;
      res.end();
    });
    closed = await closedPort();
    app = await startApp(
      APP_ENV({
        TRIGGERS_WEBHOOK_ALLOW_HOSTS: [`127.0.0.1:${redirector.port}`, `127.0.0.1:${open.port}`, `127.0.0.1:${closed}`].join(','),
        TRIGGERS_WEBHOOK_ALLOW_PRIVATE: '1',
      }),
      ['ingest', 'stream', 'live'],
    );
  });
  after(async () => {
    await app?.close();
    for (const r of [target, redirector, open]) r?.server.close();
  });

  test('hosts outside the list are refused at save, even on loopback with private allowed', async () => {
    for (const url of [`http://127.0.0.1:${target.port}/x`, `http://localhost:${redirector.port}/x`, 'https://example.com/x']) {
      const r = await putRule(app, tenant, uniqueName('r'), { webhook_url: url });
      assert.equal(r.status, 422, url);
      assert.equal(r.body.error, 'webhook_host_not_allowed', url);
    }
  });

  test('a redirect is not followed; a closed port reads like any other failure', async () => {
    const campaign = uniqueName('redirect');
    await spike(app, tenant, campaign);
    for (const [name, port] of [['redirect', redirector.port], ['open', open.port], ['closed', closed]] as const) {
      const r = await putRule(app, tenant, `${name}-${campaign}`, { campaign_id: campaign, webhook_url: `http://127.0.0.1:${port}/hook` });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
    const deliveries = await finalDeliveries(app, tenant, campaign, 3);
    const by = (port: number) => deliveries.find((d) => d.target.includes(`:${port}/`))!;
    assert.deepEqual([by(redirector.port).status, by(redirector.port).last_error, by(redirector.port).http_status], ['gave_up', 'http_3xx', 302]);
    assert.deepEqual(target.hits, [], 'the redirect target was never requested');
    assert.equal(redirector.hits.length, 2, 'both attempts went to the receiver itself');
    assert.deepEqual([by(open.port).status, by(open.port).last_error], ['gave_up', 'http_4xx']);
    assert.deepEqual([by(closed).status, by(closed).last_error, by(closed).http_status], ['gave_up', 'failed', null]);
    for (const d of deliveries) assert.ok(COARSE.has(d.last_error ?? ''), `coarse outcome only: ${d.last_error}`);
  });
});
