import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_DENY_PORTS } from '@afterglow/core';
import { EgressPolicy, deniedRange } from './egress.js';

test('egress: the address classifier refuses every non-public range, IPv4 and IPv6', () => {
  const denied: [string, string][] = [
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['169.254.169.254', 'metadata'],
    ['169.254.1.1', 'linkLocal'],
    ['100.64.0.1', 'carrierGradeNat'],
    ['100.100.100.200', 'metadata'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['255.255.255.255', 'broadcast'],
    ['240.0.0.1', 'reserved'],
    ['192.0.2.1', 'reserved'],
    ['198.18.0.1', 'reserved'],
    ['::1', 'loopback'],
    ['::', 'unspecified'],
    ['fe80::1', 'linkLocal'],
    ['febf::1', 'linkLocal'],
    ['fc00::1', 'uniqueLocal'],
    ['fd12:3456::1', 'uniqueLocal'],
    ['fd00:ec2::254', 'metadata'],
    ['ff02::1', 'multicast'],
    // IPv4 inside IPv6: classified as the IPv4 address it carries, or refused as a tunnel form.
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::ffff:10.0.0.1', 'private'],
    ['::ffff:169.254.169.254', 'metadata'],
    ['::ffff:0:0', 'unspecified'],
    ['::127.0.0.1', '*'],
    ['::7f00:1', 'ipv4Compatible'],
    ['64:ff9b::7f00:1', 'rfc6052'],
    ['2002:7f00:1::', '6to4'],
    ['2001:0:4136:e378::1', 'teredo'],
    ['2001:db8::1', 'reserved'],
    ['[::1]', 'loopback'],
    ['not-an-ip', 'invalid'],
    ['fe80::1%eth0', 'linkLocal'],
  ];
  for (const [address, range] of denied) {
    if (range === '*') assert.ok(deniedRange(address), address);
    else assert.equal(deniedRange(address), range, address);
  }
  for (const address of ['93.184.216.34', '8.8.8.8', '1.1.1.1', '172.32.0.1', '100.128.0.1', '2606:4700:4700::1111', '2a00:1450:4001::200e', '::ffff:8.8.8.8']) {
    assert.equal(deniedRange(address), undefined, address);
  }
});

const strict = (resolve: (host: string) => { address: string; family: number }[] = () => [{ address: '93.184.216.34', family: 4 }]) =>
  new EgressPolicy({ allowHosts: [], allowPrivate: false, denyPorts: [...DEFAULT_DENY_PORTS] }, async (h) => resolve(h));

test('egress: odd IPv4 spellings are normalised by the URL parser and refused as literals', async () => {
  const policy = strict(() => {
    throw new Error('a literal address must not be resolved');
  });
  for (const url of [
    'http://127.0.0.1:8080/x',
    'http://127.1/',
    'http://2130706433/',
    'http://0x7f.1/',
    'http://0x7f000001/',
    'http://017700000001/',
    'http://0177.0.0.1/',
    'http://127.000.000.001/',
    'http://[::1]/',
    'http://[::ffff:127.0.0.1]/',
    'http://[0:0:0:0:0:ffff:7f00:1]/',
    'http://169.254.169.254/latest/meta-data/',
    'http://[fd00:ec2::254]/',
    'http://0.0.0.0/',
    'http://0/',
    'http://10.0.0.1/',
    'https://192.168.0.1/',
    'http://100.64.0.1/',
  ]) {
    await assert.rejects(policy.check(url), { code: 'webhook_address_refused', status: 422 }, url);
  }
});

test('egress: scheme, port, allow-list and resolved names', async () => {
  const policy = strict((host) => {
    if (host === 'public.example') return [{ address: '93.184.216.34', family: 4 }];
    if (host === 'mixed.example') return [{ address: '93.184.216.34', family: 4 }, { address: '10.0.0.5', family: 4 }];
    if (host === 'six.example') return [{ address: '::1', family: 6 }];
    if (host === 'localhost') return [{ address: '127.0.0.1', family: 4 }];
    throw Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND' });
  });
  await policy.check('https://public.example/hook');
  await policy.check('http://public.example:8080/hook');
  await policy.check('http://93.184.216.34/hook');
  for (const [url, code] of [
    ['ftp://public.example/', 'webhook_scheme_refused'],
    ['file:///etc/passwd', 'webhook_scheme_refused'],
    ['gopher://public.example:6379/_INFO', 'webhook_scheme_refused'],
    ['not a url', 'webhook_url_invalid'],
    ['http://public.example:22/', 'webhook_port_refused'],
    ['http://public.example:6379/', 'webhook_port_refused'],
    ['http://public.example:8123/', 'webhook_port_refused'],
    ['http://mixed.example/', 'webhook_address_refused'],
    ['http://six.example/', 'webhook_address_refused'],
    ['http://localhost/', 'webhook_address_refused'],
    ['http://LOCALHOST./', 'webhook_address_refused'],
    // An unknown name answers like a private one: no oracle for internal DNS names.
    ['http://nowhere.invalid/', 'webhook_address_refused'],
  ] as const) {
    await assert.rejects(policy.check(url), { code, status: 422 }, url);
  }

  const listed = new EgressPolicy({ allowHosts: ['hooks.partner.example', 'Other.Example:8443'], allowPrivate: false, denyPorts: [22] }, async () => [{ address: '93.184.216.34', family: 4 }]);
  await listed.check('https://hooks.partner.example/x');
  await listed.check('https://other.example:8443/x');
  await assert.rejects(listed.check('https://other.example/x'), { code: 'webhook_host_not_allowed' });
  await assert.rejects(listed.check('https://evil.example/x'), { code: 'webhook_host_not_allowed' });
  await assert.rejects(listed.check('http://hooks.partner.example:22/'), { code: 'webhook_port_refused' });

  // allowPrivate with a list: the listed host may be private, nothing else is let in.
  const dev = new EgressPolicy({ allowHosts: ['127.1:9999'], allowPrivate: true, denyPorts: [] }, async () => [{ address: '127.0.0.1', family: 4 }]);
  await dev.check('http://127.0.0.1:9999/hook');
  await assert.rejects(dev.check('http://127.0.0.1:9998/hook'), { code: 'webhook_host_not_allowed' });
  await assert.rejects(dev.check('http://localhost:9999/hook'), { code: 'webhook_host_not_allowed' });
});

test('egress: the socket lookup refuses a denied answer (DNS rebinding) and passes a public one', async () => {
  let answer = [{ address: '93.184.216.34', family: 4 }];
  const policy = new EgressPolicy({ allowHosts: [], allowPrivate: false, denyPorts: [] }, async () => answer);
  const lookup = (all: boolean) =>
    new Promise<unknown>((resolve, reject) => policy.lookup('rebind.example', { all }, (err, address) => (err ? reject(err) : resolve(address))));
  assert.equal(await lookup(false), '93.184.216.34');
  assert.deepEqual(await lookup(true), answer);
  answer = [{ address: '127.0.0.1', family: 4 }];
  await assert.rejects(lookup(false), { code: 'EGRESS_REFUSED' });
  answer = [{ address: '93.184.216.34', family: 4 }, { address: '::ffff:169.254.169.254', family: 6 }];
  await assert.rejects(lookup(true), { code: 'EGRESS_REFUSED' });
});
