import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';
import { BadRequestError } from '@afterglow/core';

/**
 * Where webhooks may go (egress policy). A tenant admin chooses a webhook URL, and the server
 * POSTs to it with retries: without a policy that is a request forgery primitive against the
 * internal network (loopback services, the cloud metadata endpoint, ClickHouse's HTTP port).
 *
 * - Only http: and https:, never a denied port (SSH, SMTP, databases, brokers, Docker...).
 * - The host is resolved (every address) and refused when any address is not public unicast:
 *   loopback, RFC 1918, link-local (the metadata endpoint), CGNAT, multicast, unspecified,
 *   broadcast, reserved/documentation, ULA, IPv4-mapped/-compatible forms of those, NAT64, 6to4,
 *   Teredo. Odd IPv4 spellings (`127.1`, `2130706433`, `0x7f.1`) are normalised by the WHATWG URL
 *   parser before they are classified.
 * - The same check runs inside the socket's DNS lookup at delivery (`lookup`), so the address
 *   connected to is the one checked (a name re-pointed after the rule was saved is refused).
 * - Optionally only listed hosts (`host` or `host:port` entries). `allowPrivate` lifts the address
 *   check (development, tests): for the listed hosts only when there is a list.
 */

export interface EgressSettings {
  /** `host` or `host:port` entries; empty = any host. */
  allowHosts: readonly string[];
  /** Skip the address check (for the listed hosts only when allowHosts is set). */
  allowPrivate: boolean;
  denyPorts: readonly number[];
}

/** Resolves a host name to every address it has (tests inject one to play DNS rebinding). */
export type ResolveHost = (host: string) => Promise<LookupAddress[]>;

/** Why a URL is refused; every code is stable and safe to show the tenant. */
export type EgressRefusal = 'webhook_url_invalid' | 'webhook_scheme_refused' | 'webhook_port_refused' | 'webhook_host_not_allowed' | 'webhook_address_refused';

/** The webhook URL is not allowed by the egress policy (422 at save). */
export class EgressRefusedError extends BadRequestError {
  constructor(code: EgressRefusal, message: string) {
    super(code, message, 422);
  }
}

/** Well-known metadata endpoints, refused even where a wider range would let them through. */
const METADATA = new Set(['169.254.169.254', 'fd00:ec2::254', '100.100.100.200']);

/** Why an address is refused (its range), or undefined for public unicast. */
export function deniedRange(address: string): string | undefined {
  const bare = address.replace(/^\[|\]$/g, '');
  if (isIP(bare) === 0) return 'invalid';
  let ip: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    ip = ipaddr.parse(bare);
  } catch {
    return 'invalid';
  }
  if (ip.kind() === 'ipv6') {
    const v6 = ip as ipaddr.IPv6;
    if (v6.isIPv4MappedAddress()) ip = v6.toIPv4Address();
    // IPv4-compatible (::a.b.c.d, deprecated): some stacks still route it to the IPv4 address.
    else if (v6.parts.slice(0, 6).every((p) => p === 0)) return v6.parts[6] === 0 && v6.parts[7]! <= 1 ? v6.range() : 'ipv4Compatible';
  }
  if (METADATA.has(ip.toNormalizedString()) || METADATA.has(ip.toString())) return 'metadata';
  const range = ip.range();
  return range === 'unicast' ? undefined : range;
}

interface Target {
  url: URL;
  /** Lower-case, no brackets, no trailing dot. */
  host: string;
  port: number;
  literal: boolean;
}

function parseTarget(raw: string): Target {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new EgressRefusedError('webhook_url_invalid', 'webhook_url is not a valid URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new EgressRefusedError('webhook_scheme_refused', 'webhook_url must be http: or https:');
  const host = url.hostname.replace(/^\[|\]$/g, '').replace(/\.$/, '').toLowerCase();
  if (!host) throw new EgressRefusedError('webhook_url_invalid', 'webhook_url has no host');
  const port = url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
  return { url, host, port, literal: isIP(host) !== 0 };
}

/** An allow-list entry, normalised the way URLs are (so `127.1` and `127.0.0.1` are one entry). */
function parseEntry(entry: string): { host: string; port: number | undefined } {
  const url = new URL(`http://${entry.trim()}`);
  return { host: url.hostname.replace(/^\[|\]$/g, '').replace(/\.$/, '').toLowerCase(), port: url.port ? Number(url.port) : /:80$/.test(entry.trim()) ? 80 : undefined };
}

/** How long a save waits for the webhook host to resolve. */
const RESOLVE_TIMEOUT_MS = 3_000;

const defaultResolve: ResolveHost = (host) =>
  new Promise((resolve, reject) => dnsLookup(host, { all: true, verbatim: true }, (err, addresses) => (err ? reject(err) : resolve(addresses))));

export class EgressPolicy {
  private readonly allow: { host: string; port: number | undefined }[];
  private readonly denyPorts: ReadonlySet<number>;

  constructor(
    private readonly settings: EgressSettings,
    private readonly resolve: ResolveHost = defaultResolve,
  ) {
    this.allow = settings.allowHosts.map(parseEntry);
    this.denyPorts = new Set(settings.denyPorts);
  }

  /** The checks that need no DNS: scheme, port, allow-list, a literal address. Throws EgressRefusedError. */
  checkStatic(raw: string): Target & { private: boolean } {
    const t = parseTarget(raw);
    const listed = this.allow.find((a) => a.host === t.host && (a.port === undefined || a.port === t.port));
    if (this.allow.length > 0 && !listed) throw new EgressRefusedError('webhook_host_not_allowed', `webhook host ${t.host}:${t.port} is not in the allow-list (TRIGGERS_WEBHOOK_ALLOW_HOSTS)`);
    // A port named in the allow-list is the operator's explicit choice; otherwise the deny-list holds.
    if (this.denyPorts.has(t.port) && listed?.port !== t.port) throw new EgressRefusedError('webhook_port_refused', `webhook port ${t.port} is refused (TRIGGERS_WEBHOOK_DENY_PORTS)`);
    const privateOk = this.settings.allowPrivate;
    if (t.literal && !privateOk) {
      const range = deniedRange(t.host);
      if (range) throw refusedAddress();
    }
    return { ...t, private: privateOk };
  }

  /** Every check, resolving the host (at save time). Throws EgressRefusedError. */
  async check(raw: string): Promise<void> {
    const t = this.checkStatic(raw);
    if (t.literal || t.private) return;
    let addresses: LookupAddress[];
    let timer: NodeJS.Timeout | undefined;
    try {
      // A name that takes long to resolve holds the save (and a resolver thread): refuse it instead.
      addresses = await Promise.race([
        this.resolve(t.host),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('resolve timed out')), RESOLVE_TIMEOUT_MS);
        }),
      ]);
    } catch {
      // Same answer as a private address: the tenant learns nothing about internal names.
      throw refusedAddress();
    } finally {
      clearTimeout(timer);
    }
    if (addresses.length === 0 || addresses.some((a) => deniedRange(a.address))) throw refusedAddress();
  }

  /**
   * A `lookup` for sockets (http.request / Agent): resolves with this policy's resolver and fails
   * the connection when any address is denied, so the connected address is a checked one.
   */
  readonly lookup: LookupFunction = (hostname, options: LookupOptions, callback) => {
    const host = hostname.replace(/^\[|\]$/g, '').replace(/\.$/, '').toLowerCase();
    const privateOk = this.settings.allowPrivate;
    this.resolve(host).then(
      (all) => {
        const family = options.family === 4 || options.family === 'IPv4' ? 4 : options.family === 6 || options.family === 'IPv6' ? 6 : 0;
        const addresses = family ? all.filter((a) => a.family === family) : all;
        if (addresses.length === 0) return callback(Object.assign(new Error('no address'), { code: 'ENOTFOUND' }), '', 0);
        if (!privateOk && all.some((a) => deniedRange(a.address))) return callback(new EgressDeniedAtConnect(), '', 0);
        if (options.all) callback(null, addresses);
        else callback(null, addresses[0]!.address, addresses[0]!.family);
      },
      (err: NodeJS.ErrnoException) => callback(err, '', 0),
    );
  };
}

/** Raised inside a socket's lookup when the address is denied: the delivery is refused, not retried. */
export class EgressDeniedAtConnect extends Error {
  readonly code = 'EGRESS_REFUSED';
  constructor() {
    super('the webhook host resolves to a refused address');
  }
}

function refusedAddress(): EgressRefusedError {
  return new EgressRefusedError('webhook_address_refused', 'the webhook host must resolve to public addresses only (no loopback, private, link-local or metadata addresses)');
}
