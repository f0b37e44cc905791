import type { CampaignCostsJson, CampaignReachJson, CostFiguresJson, ReachErrorJson } from './api.ts';

/**
 * Spend, costs per result, reach and frequency as the leaderboard and the asset pages show them.
 * Pure. Spends in different currencies are never added: an asset's cells use the currency it spent
 * most in, and name the others.
 */

export interface CostCells {
  currency: string | null;
  spend: number | null;
  cpm: number | null;
  cpc: number | null;
  cpa: number | null;
  /** Null where conversions carry no value (nothing to return on). */
  roas: number | null;
  reach: number | null;
  frequency: number | null;
  otherCurrencies: string[];
}

export const NO_COSTS: CostCells = { currency: null, spend: null, cpm: null, cpc: null, cpa: null, roas: null, reach: null, frequency: null, otherCurrencies: [] };

/** ROAS only where conversions carried a value. */
export function roasOf(c: Pick<CostFiguresJson, 'roas' | 'conversion_value'>): number | null {
  return c.conversion_value > 0 ? c.roas : null;
}

/** Cells per asset from the campaign's costs and reach answers (either may be missing). */
export function costCells(costs: CampaignCostsJson | null, reach: CampaignReachJson | null): Map<string, CostCells> {
  const out = new Map<string, CostCells>();
  const cell = (id: string) => {
    let c = out.get(id);
    if (!c) out.set(id, (c = { ...NO_COSTS, otherCurrencies: [] }));
    return c;
  };
  // Largest spend first (the server's order): the first currency seen per asset is its main one.
  for (const a of [...(costs?.assets ?? [])].sort((x, y) => y.spend - x.spend)) {
    const c = cell(a.asset_id);
    if (c.currency === null) Object.assign(c, { currency: a.currency, spend: a.spend, cpm: a.cpm, cpc: a.cpc, cpa: a.cpa, roas: roasOf(a) });
    else c.otherCurrencies.push(a.currency);
  }
  for (const r of reach?.assets ?? []) {
    const c = cell(r.asset_id);
    c.reach = r.reach;
    c.frequency = r.frequency;
  }
  return out;
}

export function fmtMoney(x: number | null, currency: string | null): string {
  if (x === null || currency === null || !Number.isFinite(x)) return '—';
  try {
    // Whole units from 100 up (a column of costs stays narrow), cents below.
    const digits = Math.abs(x) >= 100 ? 0 : 2;
    return new Intl.NumberFormat(undefined, { style: 'currency', currency, minimumFractionDigits: digits, maximumFractionDigits: digits }).format(x);
  } catch {
    return `${x.toFixed(2)} ${currency}`;
  }
}

export function fmtRatio(x: number | null, digits = 2): string {
  return x === null || !Number.isFinite(x) ? '—' : `${x.toFixed(digits)}`;
}

/** The sketch's error, as a person reads it. */
export function fmtReachError(e: ReachErrorJson | null | undefined): string {
  if (!e) return '';
  return e.exact ? 'exact count' : `estimate ± ${(2 * e.relative_standard_error * 100).toFixed(1)} % (95 %)`;
}
