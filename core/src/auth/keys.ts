import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { TABLES } from '../contracts.js';
import { BadRequestError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/clickhouse.js';
import { SCOPES, type Principal, type Scope } from './principal.js';

/**
 * API keys: `ag_<key id>.<secret>`, e.g. `ag_k3f9c0a1b2d4e6f80.Zq...` (43 base64url characters of
 * secret = 256 random bits). The key id is public (logs, listings, lookups: a request's key is one
 * in-memory map read, never a store query); only an HMAC-SHA256 of the secret is stored.
 *
 * Why a fast keyed hash and not scrypt/argon2: those slow hashes exist to make guessing
 * low-entropy passwords expensive. A 256-bit random secret cannot be guessed however fast the
 * hash, and a slow hash would cost every request tens of milliseconds of CPU (a denial-of-service
 * lever for anyone holding a key id). The HMAC key (AUTH_KEY_PEPPER) lives outside ClickHouse, so
 * a leaked table alone does not even allow checking a stolen secret offline.
 *
 * Rotation issues a new key with the same tenant, scopes and placements, and gives the old one an
 * expiry (a grace period for clients to switch); revocation is immediate in the process that
 * handles it and reaches every other process within AUTH_REFRESH_MS (their cache refresh). The
 * same holds for new keys: one created through this process works at once, one created elsewhere
 * (another server, the keys CLI) within AUTH_REFRESH_MS.
 */

const KEY_RE = /^ag_(k[0-9a-f]{16})\.([A-Za-z0-9_-]{43})$/;
const DEFAULT_PEPPER = 'afterglow-api-key-v1';
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const MAX_NAME = 128;
const MAX_PLACEMENTS = 1000;
const MAX_ORIGINS = 100;

export interface ApiKeyInfo {
  key_id: string;
  tenant_id: string;
  name: string;
  scopes: Scope[];
  /** Edge keys: the placements this key may send for / subscribe to; empty = any. */
  placements: string[];
  /**
   * Web keys (the browser SDK, @afterglow/web): the page origins (`https://shop.example`) allowed to
   * send with this key. Such a key is public by design (it sits in the page), so it may only ingest,
   * every request with it must come from one of these origins, and it alone may travel in the URL.
   * Empty = an ordinary secret key.
   */
  origins: string[];
  created_at: number;
  /** Epoch ms after which the key is refused (rotation grace), or null. */
  expires_at: number | null;
  revoked_at: number | null;
  /** The key that replaced this one by rotation ('' if none). */
  rotated_to: string;
  status: 'active' | 'expired' | 'revoked';
}

interface KeyRecord extends Omit<ApiKeyInfo, 'status'> {
  secret_hash: string;
  updated_at: number;
}

export interface NewKey {
  tenantId: string;
  scopes: readonly Scope[];
  name?: string;
  placements?: readonly string[];
  /** A web key's allowed page origins (see ApiKeyInfo.origins). */
  origins?: readonly string[];
  /** Epoch ms; absent = never. */
  expiresAt?: number;
}

export interface CreatedKey {
  /** The full key, shown once; only its hash is kept. */
  key: string;
  info: ApiKeyInfo;
}

export function generateKey(): { keyId: string; secret: string; key: string } {
  const keyId = `k${randomBytes(8).toString('hex')}`;
  const secret = randomBytes(32).toString('base64url');
  return { keyId, secret, key: `ag_${keyId}.${secret}` };
}

/** The key id and secret of a well-formed key; undefined otherwise (never throws on input). */
export function parseKey(raw: string | undefined): { keyId: string; secret: string } | undefined {
  if (typeof raw !== 'string' || raw.length > 200) return undefined;
  const m = KEY_RE.exec(raw.trim());
  return m ? { keyId: m[1]!, secret: m[2]! } : undefined;
}

export function hashSecret(secret: string, pepper: string = DEFAULT_PEPPER): string {
  return createHmac('sha256', pepper).update(secret).digest('base64url');
}

function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function statusOf(r: KeyRecord, now: number): ApiKeyInfo['status'] {
  if (r.revoked_at !== null && r.revoked_at <= now) return 'revoked';
  if (r.expires_at !== null && r.expires_at <= now) return 'expired';
  return 'active';
}

function info(r: KeyRecord, now: number): ApiKeyInfo {
  const { secret_hash: _hash, updated_at: _u, ...rest } = r;
  return { ...rest, status: statusOf(r, now) };
}

/** `https://shop.example[:port]` exactly as browsers send it in Origin; anything else is refused. */
export function parseOrigins(input: readonly string[]): string[] {
  if (input.length > MAX_ORIGINS) throw new BadRequestError('invalid_origins', `at most ${MAX_ORIGINS} origins`);
  const out = new Set<string>();
  for (const o of input) {
    let origin: string | undefined;
    try {
      origin = typeof o === 'string' && o.length <= 256 ? new URL(o).origin : undefined;
    } catch {
      origin = undefined;
    }
    if (!origin || origin !== o || !/^https?:$/.test(new URL(o).protocol)) {
      throw new BadRequestError('invalid_origins', `${JSON.stringify(o).slice(0, 80)} is not an origin: scheme://host[:port], http or https, no path or trailing slash`);
    }
    out.add(origin);
  }
  return [...out].sort();
}

/** Scopes from user input (`read,admin`), checked. */
export function parseScopes(input: string | readonly string[]): Scope[] {
  const list = typeof input === 'string' ? input.split(',').map((s) => s.trim()).filter(Boolean) : [...input];
  if (list.length === 0) throw new BadRequestError('invalid_scopes', `name at least one scope of ${SCOPES.join(', ')}`);
  for (const s of list) if (!(SCOPES as readonly string[]).includes(s)) throw new BadRequestError('invalid_scopes', `unknown scope ${JSON.stringify(s).slice(0, 40)}; scopes are ${SCOPES.join(', ')}`);
  return [...new Set(list)].sort() as Scope[];
}

export interface ApiKeyStoreOptions {
  store: Store;
  pepper?: string | undefined;
  /** Changed keys are re-read this often (revocations reach this process within it). */
  refreshMs: number;
  log?: Logger;
  clock?: () => number;
}

/** A key's rows folded into one; aliases differ from column names (ClickHouse resolves aliases first). */
const ROW_FIELDS = `key_id AS k_id,
  argMax(tenant_id, updated_at) AS k_tenant,
  argMax(name, updated_at) AS k_name,
  argMax(scopes, updated_at) AS k_scopes,
  argMax(placements, updated_at) AS k_placements,
  argMax(origins, updated_at) AS k_origins,
  argMax(secret_hash, updated_at) AS k_hash,
  toUnixTimestamp64Milli(min(created_at)) AS k_created,
  toUnixTimestamp64Milli(min(expires_at)) AS k_expires,
  toUnixTimestamp64Milli(max(revoked_at)) AS k_revoked,
  argMax(rotated_to, updated_at) AS k_rotated_to,
  toUnixTimestamp64Milli(max(updated_at)) AS k_updated`;
/** Int64 milliseconds as JSON numbers. */
const READ_SETTINGS = { output_format_json_quote_64bit_integers: 0 } as const;

interface Row {
  k_id: string;
  k_tenant: string;
  k_name: string;
  k_scopes: string[];
  k_placements: string[];
  k_origins: string[];
  k_hash: string;
  k_created: number;
  k_expires: number | null;
  k_revoked: number | null;
  k_rotated_to: string;
  k_updated: number;
}

const num = (v: number | string | null): number | null => (v === null ? null : Number(v));
const toRecord = (r: Row): KeyRecord => ({
  key_id: r.k_id,
  tenant_id: r.k_tenant,
  name: r.k_name,
  scopes: r.k_scopes.filter((s): s is Scope => (SCOPES as readonly string[]).includes(s)),
  placements: r.k_placements,
  origins: r.k_origins,
  secret_hash: r.k_hash,
  created_at: Number(r.k_created),
  expires_at: num(r.k_expires),
  revoked_at: num(r.k_revoked),
  rotated_to: r.k_rotated_to,
  updated_at: Number(r.k_updated),
});

/**
 * Keys in ClickHouse with a per-process cache. Every key is held in memory (a few hundred bytes
 * each) and a refresh every `refreshMs` reads only the keys written since the last one, so the
 * cache is the whole truth as of the last refresh: an id it does not hold is refused without a
 * query. Unknown key ids (a spray of well-formed random ones) thus cost the store nothing; a store
 * that serves one query at a time (embedded chDB) would otherwise serve them before real requests.
 */
export class ApiKeyStore {
  private readonly cache = new Map<string, KeyRecord>();
  private readonly pepper: string;
  private readonly clock: () => number;
  private timer: NodeJS.Timeout | undefined;
  /** Server time (inserted_at) of the newest row seen, for incremental refreshes. */
  private since = 0;
  private refreshing: Promise<void> | undefined;

  constructor(private readonly options: ApiKeyStoreOptions) {
    this.pepper = options.pepper ?? DEFAULT_PEPPER;
    this.clock = options.clock ?? Date.now;
  }

  private get table(): string {
    return this.options.store.table(TABLES.apiKeys);
  }

  /** Load every key and keep refreshing. */
  async start(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => {
      this.refresh().catch((err) => this.options.log?.warn({ err }, 'api key refresh failed; serving cached keys'));
    }, this.options.refreshMs);
    this.timer.unref();
  }

  close(): void {
    clearInterval(this.timer);
  }

  /** Re-read the keys changed since the last refresh (with an overlap, for rows still in flight). */
  refresh(): Promise<void> {
    this.refreshing ??= this.doRefresh().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private async doRefresh(): Promise<void> {
    const since = Math.max(0, this.since - 10_000);
    const rs = await this.options.store.client.query({
      query: `SELECT ${ROW_FIELDS}, toUnixTimestamp64Milli(max(inserted_at)) AS inserted
        FROM ${this.table}
        WHERE key_id IN (SELECT key_id FROM ${this.table} WHERE inserted_at >= fromUnixTimestamp64Milli({since:Int64}))
        GROUP BY key_id`,
      query_params: { since },
      format: 'JSONEachRow',
      clickhouse_settings: READ_SETTINGS,
    });
    for (const row of await rs.json<Row & { inserted: number }>()) {
      this.cache.set(row.k_id, toRecord(row));
      this.since = Math.max(this.since, Number(row.inserted));
    }
  }

  private async load(keyId: string): Promise<KeyRecord | undefined> {
    const rs = await this.options.store.client.query({
      query: `SELECT ${ROW_FIELDS} FROM ${this.table} WHERE key_id = {id:String} GROUP BY key_id`,
      query_params: { id: keyId },
      format: 'JSONEachRow',
      clickhouse_settings: READ_SETTINGS,
    });
    const [row] = await rs.json<Row>();
    return row ? toRecord(row) : undefined;
  }

  /** The principal of a valid, active key; undefined for anything else (malformed, unknown, wrong secret, revoked, expired). */
  async authenticate(raw: string | undefined): Promise<Principal | undefined> {
    const parsed = parseKey(raw);
    if (!parsed) return undefined;
    const r = this.cache.get(parsed.keyId);
    if (!r || !sameHash(r.secret_hash, hashSecret(parsed.secret, this.pepper))) return undefined;
    if (statusOf(r, this.clock()) !== 'active') return undefined;
    return {
      tenantId: r.tenant_id,
      keyId: r.key_id,
      scopes: r.scopes,
      ...(r.placements.length > 0 ? { placements: r.placements } : {}),
      ...(r.origins.length > 0 ? { origins: r.origins } : {}),
    };
  }

  private async write(r: KeyRecord): Promise<void> {
    const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
    await this.options.store.client.insert({
      table: this.table,
      values: [
        {
          key_id: r.key_id,
          tenant_id: r.tenant_id,
          name: r.name,
          scopes: r.scopes,
          placements: r.placements,
          origins: r.origins,
          secret_hash: r.secret_hash,
          created_at: iso(r.created_at),
          expires_at: iso(r.expires_at),
          revoked_at: iso(r.revoked_at),
          rotated_to: r.rotated_to,
          updated_at: iso(r.updated_at),
        },
      ],
      format: 'JSONEachRow',
      clickhouse_settings: { date_time_input_format: 'best_effort' },
    });
    this.cache.set(r.key_id, r);
  }

  async create(input: NewKey): Promise<CreatedKey> {
    if (!ID_RE.test(input.tenantId)) throw new BadRequestError('invalid_tenant', 'tenant ids are 1-128 characters of [A-Za-z0-9._:-]');
    const scopes = parseScopes(input.scopes);
    const placements = [...new Set(input.placements ?? [])];
    if (placements.length > MAX_PLACEMENTS || placements.some((p) => typeof p !== 'string' || p.length === 0 || p.length > 128)) {
      throw new BadRequestError('invalid_placements', `at most ${MAX_PLACEMENTS} placements of 1-128 characters`);
    }
    const origins = parseOrigins(input.origins ?? []);
    if (origins.length > 0 && scopes.join() !== 'ingest') {
      throw new BadRequestError('invalid_scopes', 'a web key (origins) is public: its only scope is ingest');
    }
    const name = (input.name ?? '').slice(0, MAX_NAME);
    const now = this.clock();
    if (input.expiresAt !== undefined && !(Number.isFinite(input.expiresAt) && input.expiresAt > now)) {
      throw new BadRequestError('invalid_expiry', 'expires_at must be a future time in epoch milliseconds');
    }
    const { keyId, secret, key } = generateKey();
    const r: KeyRecord = {
      key_id: keyId,
      tenant_id: input.tenantId,
      name,
      scopes,
      placements,
      origins,
      secret_hash: hashSecret(secret, this.pepper),
      created_at: now,
      expires_at: input.expiresAt ?? null,
      revoked_at: null,
      rotated_to: '',
      updated_at: now,
    };
    await this.write(r);
    return { key, info: info(r, now) };
  }

  /** The tenant's keys (never their secrets), newest first. */
  async list(tenantId: string): Promise<ApiKeyInfo[]> {
    await this.refresh();
    const now = this.clock();
    return [...this.cache.values()].filter((r) => r.tenant_id === tenantId).sort((a, b) => b.created_at - a.created_at).map((r) => info(r, now));
  }

  private async owned(tenantId: string, keyId: string): Promise<KeyRecord> {
    const r = typeof keyId === 'string' && /^k[0-9a-f]{16}$/.test(keyId) ? await this.load(keyId) : undefined;
    // Another tenant's key reads as missing: key ids of other tenants are not confirmed.
    if (!r || r.tenant_id !== tenantId) throw new BadRequestError('not_found', 'no such key', 404);
    return r;
  }

  /**
   * A new key with the old one's tenant, scopes and placements; the old one keeps working for
   * `graceMs` (0 = refused at once).
   */
  async rotate(tenantId: string, keyId: string, graceMs: number): Promise<CreatedKey & { previous: ApiKeyInfo }> {
    const old = await this.owned(tenantId, keyId);
    const now = this.clock();
    if (statusOf(old, now) !== 'active') throw new BadRequestError('key_inactive', `key ${keyId} is ${statusOf(old, now)}; create a new one instead`, 409);
    const created = await this.create({
      tenantId,
      scopes: old.scopes,
      name: old.name,
      placements: old.placements,
      origins: old.origins,
      ...(old.expires_at !== null ? { expiresAt: old.expires_at } : {}),
    });
    const graceEnd = now + Math.max(0, graceMs);
    const next: KeyRecord = {
      ...old,
      expires_at: old.expires_at === null ? graceEnd : Math.min(old.expires_at, graceEnd),
      rotated_to: created.info.key_id,
      updated_at: Math.max(now, old.updated_at + 1),
    };
    await this.write(next);
    return { ...created, previous: info(next, now) };
  }

  async revoke(tenantId: string, keyId: string): Promise<ApiKeyInfo> {
    const old = await this.owned(tenantId, keyId);
    const now = this.clock();
    if (old.revoked_at !== null) return info(old, now);
    const next: KeyRecord = { ...old, revoked_at: now, updated_at: Math.max(now, old.updated_at + 1) };
    await this.write(next);
    return info(next, now);
  }
}
