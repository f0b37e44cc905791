/**
 * Hot-state key layout of the live role. Ids may contain ':' (our separator) and Redis Cluster
 * reads '{...}' as a hash tag, so every id is one token: characters outside [A-Za-z0-9._-] are
 * written %XX (injective, since '%' is encoded too).
 *
 *   <prefix>:<tenant>:a:<asset>                 hash: an asset's rows and meta
 *   <prefix>:<tenant>:c:<campaign>:p<n>         hash: partition n's share of a campaign
 *   <prefix>:<tenant>:c:<campaign>:parts        zset: partitions holding a share
 *   <prefix>:<tenant>:c:<campaign>:assets       zset: the campaign's assets by last activity
 *   <prefix>:<tenant>:m:<master>:p<n>           hash: partition n's share of a master (its tied ads)
 *   <prefix>:<tenant>:m:<master>:parts          zset
 *   <prefix>:<tenant>:m:<master>:ads            zset: ads tied to the master, by last activity
 *   <prefix>:<tenant>:tie:<ad>                  string: {"m": master | null, "at": decided_at, "d"?: the ad it duplicates}
 *   <prefix>:<tenant>:tie:<ad>:dups             zset: the ads whose latest decision duplicates this ad (by decided_at)
 *   <prefix>:<tenant>:q:a:p<n> / q:c:p<n>        zset: the tenant's live assets / campaigns on partition n, by last activity (quotas)
 *   <prefix>:<tenant>:eid:{<tenant>}:<bucket>  hash: fingerprint -> payload digest of the first copy of each event id that arrived in that window-long bucket
 *   <prefix>:<tenant>:fresh                     hash: per aggregator member, "newest received_at,events in the last minute,written at"
 *   <prefix>:off:<scope>:<group>:<topic>:<n>    string: next offset of partition n applied to the above
 *   <prefix>:dd:<scope>:<group>:<n>:<bucket>     string: events of partition n counted in that arrival bucket (DedupWindow)
 */
export function hotToken(id: string): string {
  return /^[A-Za-z0-9._-]+$/.test(id) ? id : id.replace(/[^A-Za-z0-9._-]/gu, (c) => [...Buffer.from(c, 'utf8')].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join(''));
}

export type EntityKind = 'asset' | 'campaign' | 'master';

/** Entity keys remembered at most (then forgotten all at once): a bound on the memo, not on the entities. */
const ENTITY_KEY_MEMO_MAX = 200_000;
/** Partitions whose campaign and master keys are remembered (any partition gets its key either way). */
const MEMO_PARTITIONS = 4096;

/** One tenant's remembered keys: its escaped base, assets by id, campaign and master shares by id and partition. */
interface TenantKeys {
  base: string;
  asset: Map<string, string>;
  campaign: Map<string, (string | undefined)[]>;
  master: Map<string, (string | undefined)[]>;
}

export class LiveKeys {
  /**
   * Entity keys by tenant, kind and id (and partition): the live path asks for the same few keys
   * several times per event; a remembered key is one string, built and hashed once, rather than a
   * new one to escape, concatenate and hash on every Map lookup.
   */
  private readonly entityKeys = new Map<string, TenantKeys>();
  private entityKeyCount = 0;

  constructor(readonly prefix: string) {}

  private base(tenant: string): string {
    return `${this.prefix}:${hotToken(tenant)}`;
  }

  asset(tenant: string, asset: string): string {
    const memo = this.tenantKeys(tenant);
    const known = memo.asset.get(asset);
    if (known !== undefined) return known;
    const key = `${memo.base}:a:${hotToken(asset)}`;
    if (this.mayRemember()) memo.asset.set(asset, key);
    return key;
  }

  /** The hash of an entity: an asset, or one partition's share of a campaign or master. */
  entity(kind: EntityKind, tenant: string, id: string, partition: number): string {
    if (kind === 'asset') return this.asset(tenant, id);
    const memo = this.tenantKeys(tenant);
    const ids = kind === 'campaign' ? memo.campaign : memo.master;
    const known = ids.get(id)?.[partition];
    if (known !== undefined) return known;
    const key = `${memo.base}:${kind === 'campaign' ? 'c' : 'm'}:${hotToken(id)}:p${partition}`;
    if (Number.isInteger(partition) && partition >= 0 && partition < MEMO_PARTITIONS && this.mayRemember()) {
      let byPartition = ids.get(id);
      if (!byPartition) ids.set(id, (byPartition = []));
      byPartition[partition] = key;
    }
    return key;
  }

  private tenantKeys(tenant: string): TenantKeys {
    let memo = this.entityKeys.get(tenant);
    if (!memo) this.entityKeys.set(tenant, (memo = { base: this.base(tenant), asset: new Map(), campaign: new Map(), master: new Map() }));
    return memo;
  }

  /** Counts one more remembered key; past the bound everything is forgotten first (the caller's memo goes with it). */
  private mayRemember(): boolean {
    if (++this.entityKeyCount <= ENTITY_KEY_MEMO_MAX) return true;
    this.entityKeys.clear();
    this.entityKeyCount = 0;
    return false;
  }

  parts(kind: 'campaign' | 'master', tenant: string, id: string): string {
    return `${this.base(tenant)}:${kind === 'campaign' ? 'c' : 'm'}:${hotToken(id)}:parts`;
  }

  campaignAssets(tenant: string, campaign: string): string {
    return `${this.base(tenant)}:c:${hotToken(campaign)}:assets`;
  }

  masterAds(tenant: string, master: string): string {
    return `${this.base(tenant)}:m:${hotToken(master)}:ads`;
  }

  /** The tenant's live assets (or campaigns) on one partition, counted against its quota. */
  quota(kind: 'asset' | 'campaign', tenant: string, partition: number): string {
    return `${this.base(tenant)}:q:${kind === 'asset' ? 'a' : 'c'}:p${partition}`;
  }

  /**
   * Who first used each event id (fingerprint -> payload digest, see core dedup.ts) among the
   * partitions, for ids that arrived in one window-long bucket. Consecutive buckets are read
   * together, so the tenant is a hash tag: they share a Redis Cluster slot.
   */
  eventClaims(tenant: string, bucket: number): string {
    return `${this.base(tenant)}:eid:{${hotToken(tenant)}}:${bucket}`;
  }

  freshness(tenant: string): string {
    return `${this.base(tenant)}:fresh`;
  }

  tie(tenant: string, ad: string): string {
    return `${this.base(tenant)}:tie:${hotToken(ad)}`;
  }

  /** The ads that follow `ad`'s master as its duplicates. */
  tieDuplicates(tenant: string, ad: string): string {
    return `${this.tie(tenant, ad)}:dups`;
  }

  dedup(scope: string, group: string, partition: number, bucket: number): string {
    return `${this.prefix}:dd:${hotToken(scope)}:${hotToken(group)}:${partition}:${bucket}`;
  }

  offset(scope: string, group: string, topic: string, partition: number): string {
    return `${this.prefix}:off:${hotToken(scope)}:${hotToken(group)}:${hotToken(topic)}:${partition}`;
  }
}
