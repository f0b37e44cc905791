import { z } from 'zod';
import { BadRequestError, TABLES, type Store } from '@afterglow/core';
import { Slicer, type DecodedItem } from './decode.js';
import type { IntakeGuard } from './intake.js';

/**
 * Media spend, imported from the platforms that bill it: one figure per asset, placement and UTC
 * day. A day imported again replaces the earlier figure (platforms restate), so spend is never
 * counted twice. Costs per result (CPM, CPC, CPA, ROAS) are read against the engagement rollups.
 */

const ID = z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/, 'letters, digits and . _ : - (at most 128)');

export const spendRowSchema = z.strictObject({
  tenant_id: ID.optional(),
  campaign_id: ID,
  asset_id: ID,
  placement: ID.optional(),
  date: z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'YYYY-MM-DD').refine(isCalendarDate, 'not a calendar date'),
  spend: z.number().finite().min(0).max(1e12),
  currency: z.string().regex(/^[A-Z]{3}$/, 'an ISO 4217 code such as USD').default('USD'),
});
export type SpendRow = z.output<typeof spendRowSchema>;

/** 2026-02-30 parses (as March 2nd) in JavaScript; a calendar date must read back as itself. */
function isCalendarDate(d: string): boolean {
  const t = Date.parse(`${d}T00:00:00Z`);
  return !Number.isNaN(t) && new Date(t).toISOString().slice(0, 10) === d;
}

export interface SpendRejection {
  index: number;
  reason: 'undecodable' | 'invalid_field' | 'tenant_forbidden' | 'too_old' | 'too_far_in_future';
  field?: string;
  message: string;
}

export interface SpendImportResult {
  received: number;
  written: number;
  rejected: number;
  rejections: SpendRejection[];
  dry_run: boolean;
}

export interface SpendImportOptions {
  store: Store;
  /** Oldest day accepted, as an age (the history import's). */
  maxAgeMs: number;
  /** Rows one request may carry; more is refused whole before any is validated (413 too_many_rows). */
  maxRowsPerRequest?: number;
  clock?: () => number;
}

const DAY_MS = 86_400_000;

export class SpendImport {
  private readonly clock: () => number;
  /**
   * One spend request at a time per tenant in this process: a tenant that posts many huge bodies at
   * once waits for its own earlier ones instead of taking several turns of the event loop per turn
   * any other tenant gets.
   */
  private readonly running = new Map<string, Promise<unknown>>();

  constructor(private readonly options: SpendImportOptions) {
    this.clock = options.clock ?? Date.now;
  }

  async run(items: readonly DecodedItem[], guard: IntakeGuard | undefined, tenantOfRequest: string | undefined, dryRun: boolean): Promise<SpendImportResult> {
    const max = this.options.maxRowsPerRequest;
    if (max !== undefined && items.length > max) {
      throw new BadRequestError('too_many_rows', `${items.length} spend rows in one request; the limit is ${max}: split the upload`, 413);
    }
    const tenant = guard?.tenantId ?? tenantOfRequest ?? '';
    const before = this.running.get(tenant);
    const mine = (async () => {
      if (before) await before.catch(() => undefined);
      return this.step(items, guard, tenantOfRequest, dryRun);
    })();
    this.running.set(tenant, mine);
    try {
      return await mine;
    } finally {
      if (this.running.get(tenant) === mine) this.running.delete(tenant);
    }
  }

  private async step(items: readonly DecodedItem[], guard: IntakeGuard | undefined, tenantOfRequest: string | undefined, dryRun: boolean): Promise<SpendImportResult> {
    const now = this.clock();
    const rows: (SpendRow & { tenant_id: string })[] = [];
    const rejections: SpendRejection[] = [];
    // Validation is the long part of a big body (a schema parse per row): it runs in slices between
    // which every other request gets its turn.
    const slicer = new Slicer();
    for (let index = 0; index < items.length; index++) {
      if ((index & 255) === 255) await slicer.maybeYield();
      const item = items[index]!;
      if (!item.ok) {
        rejections.push({ index, reason: 'undecodable', message: item.message });
        continue;
      }
      const parsed = spendRowSchema.safeParse(item.value);
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        const field = issue.path.map(String).join('.');
        rejections.push({ index, reason: 'invalid_field', ...(field && { field }), message: `${field || 'row'}: ${issue.message}` });
        continue;
      }
      const row = parsed.data;
      const tenant = row.tenant_id ?? guard?.tenantId ?? tenantOfRequest;
      if (!tenant || (guard && tenant !== guard.tenantId)) {
        rejections.push({ index, reason: 'tenant_forbidden', field: 'tenant_id', message: tenant ? 'the API key belongs to another tenant' : 'tenant_id is required' });
        continue;
      }
      const day = Date.parse(`${row.date}T00:00:00Z`);
      if (day < now - this.options.maxAgeMs) {
        rejections.push({ index, reason: 'too_old', field: 'date', message: `${row.date} is older than the import window (${this.options.maxAgeMs} ms)` });
        continue;
      }
      if (day > now + DAY_MS) {
        rejections.push({ index, reason: 'too_far_in_future', field: 'date', message: `${row.date} is in the future` });
        continue;
      }
      rows.push({ ...row, tenant_id: tenant });
    }
    if (!dryRun && rows.length > 0) {
      const importedAt = now;
      await this.options.store.client.insert({
        table: this.options.store.table(TABLES.spendDaily),
        values: rows.map((r) => ({
          tenant_id: r.tenant_id,
          campaign_id: r.campaign_id,
          asset_id: r.asset_id,
          placement: r.placement ?? '',
          day: r.date,
          spend: r.spend,
          currency: r.currency,
          imported_at: importedAt,
        })),
        format: 'JSONEachRow',
      });
    }
    return { received: items.length, written: dryRun ? 0 : rows.length, rejected: rejections.length, rejections, dry_run: dryRun };
  }
}

export interface AssetCosts {
  asset_id: string;
  currency: string;
  spend: number;
  impressions: number;
  clicks: number;
  conversions: number;
  conversion_value: number;
  /** Cost per thousand impressions; null without impressions. */
  cpm: number | null;
  cpc: number | null;
  cpa: number | null;
  /** Conversion value per unit of spend; null without spend. */
  roas: number | null;
}

export interface CampaignCosts {
  tenant_id: string;
  campaign_id: string;
  from: string;
  to: string;
  assets: AssetCosts[];
  /** One total per currency: spends in different currencies are never added. */
  totals: Omit<AssetCosts, 'asset_id'>[];
}

/**
 * Spend against engagement per asset over whole UTC days [from, to]: the spend table (latest figure
 * per day) joined with the per-minute rollups summed over the same days.
 */
export async function campaignCosts(store: Store, tenantId: string, campaignId: string, from: string, to: string): Promise<CampaignCosts> {
  const spendRs = await store.client.query({
    query: `SELECT asset_id, currency, sum(spend) AS spend
            FROM ${store.table(TABLES.spendDaily)} FINAL
            WHERE tenant_id = {tenant:String} AND campaign_id = {campaign:String} AND day BETWEEN {from:Date} AND {to:Date}
            GROUP BY asset_id, currency`,
    query_params: { tenant: tenantId, campaign: campaignId, from, to },
    format: 'JSONEachRow',
  });
  const engagementRs = await store.client.query({
    query: `SELECT asset_id,
                   sumIf(events, kind = 'impression') AS impressions,
                   sumIf(events, kind = 'click') AS clicks,
                   sumIf(events, kind = 'conversion') AS conversions,
                   sumIf(value_sum, kind = 'conversion') AS conversion_value
            FROM ${store.table(TABLES.assetMinute)}
            WHERE tenant_id = {tenant:String} AND campaign_id = {campaign:String}
              AND minute >= toDateTime({from:Date}, 'UTC') AND minute < toDateTime({to:Date}, 'UTC') + INTERVAL 1 DAY
            GROUP BY asset_id`,
    query_params: { tenant: tenantId, campaign: campaignId, from, to },
    format: 'JSONEachRow',
  });
  const spends = await spendRs.json<{ asset_id: string; currency: string; spend: number | string }>();
  const engagement = new Map(
    (await engagementRs.json<{ asset_id: string; impressions: string | number; clicks: string | number; conversions: string | number; conversion_value: string | number }>()).map(
      (r) => [r.asset_id, { impressions: Number(r.impressions), clicks: Number(r.clicks), conversions: Number(r.conversions), conversion_value: Number(r.conversion_value) }],
    ),
  );
  const assets = spends
    .map((s) => costs(s.asset_id, s.currency, Number(s.spend), engagement.get(s.asset_id)))
    .sort((a, b) => b.spend - a.spend || a.asset_id.localeCompare(b.asset_id));
  const byCurrency = new Map<string, AssetCosts>();
  for (const a of assets) {
    const t = byCurrency.get(a.currency) ?? costs('', a.currency, 0, { impressions: 0, clicks: 0, conversions: 0, conversion_value: 0 });
    byCurrency.set(a.currency, costs('', a.currency, t.spend + a.spend, {
      impressions: t.impressions + a.impressions,
      clicks: t.clicks + a.clicks,
      conversions: t.conversions + a.conversions,
      conversion_value: t.conversion_value + a.conversion_value,
    }));
  }
  const totals = [...byCurrency.values()].map(({ asset_id: _asset, ...rest }) => rest);
  return { tenant_id: tenantId, campaign_id: campaignId, from, to, assets, totals };
}

export function costs(
  assetId: string,
  currency: string,
  spend: number,
  e: { impressions: number; clicks: number; conversions: number; conversion_value: number } | undefined,
): AssetCosts {
  const { impressions, clicks, conversions, conversion_value } = e ?? { impressions: 0, clicks: 0, conversions: 0, conversion_value: 0 };
  return {
    asset_id: assetId,
    currency,
    spend,
    impressions,
    clicks,
    conversions,
    conversion_value,
    cpm: impressions > 0 ? (spend / impressions) * 1000 : null,
    cpc: clicks > 0 ? spend / clicks : null,
    cpa: conversions > 0 ? spend / conversions : null,
    roas: spend > 0 ? conversion_value / spend : null,
  };
}
