import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, statSync, type WriteStream } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { parse as parseCsv } from 'csv-parse';
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { loadConfig, type ClientSettings } from '@afterglow/core';
import { ApiError, createApiClient } from '@afterglow/core/api';

/**
 * `afterglow import events FILE`: engagement history (NDJSON, CSV or Parquet) sent to a running
 * server's POST /v1/import/events in batches. The server validates every event as live ingest does
 * and writes it straight to the store, exactly once: an event without an id gets one derived from
 * its content, so running the same import twice adds nothing the second time.
 */
const USAGE = `usage: afterglow import events FILE [options]
       afterglow import daily FILE [options]

  events FILE          .ndjson/.jsonl, .csv or .parquet (or --format); one event per line/row
  daily FILE           a platform's daily export: one row per ad and day with counts (see below)
  --tenant T           tenant of rows that carry no tenant_id (the key's tenant must match)
  --campaign C         campaign of rows that carry no campaign_id
  --map FROM=TO,...    rename columns, e.g. --map ad_id=asset_id,ts=occurred_at,type=kind
  --format F           ndjson | csv | parquet (default: from the file name)
  --url URL            server (default AFTERGLOW_URL or http://127.0.0.1:8080)
  --key KEY            admin API key of the tenant (default AFTERGLOW_API_KEY)
  --batch N            events per request (default 5000)
  --dry-run            validate and count what would be written; write nothing
  --rejects FILE       write every refused row as NDJSON {row, reason, field, message}
  --currency CUR       daily: currency of a spend column when rows carry none (default USD)
  --quiet              no progress line

Columns: event_id, tenant_id, campaign_id, asset_id, kind, value, occurred_at (epoch ms or ISO 8601),
channel, placement, region, device; others are ignored. Events must be older than the live late
window (EVENT_LIVE_LATE_MS): newer ones are refused as too_recent and belong to POST /v1/events.

Daily exports: columns date (YYYY-MM-DD, UTC), asset_id (e.g. --map ad_id=asset_id), campaign_id (or
--campaign) and any of impressions, views, clicks, likes, shares, comments, conversions, conversion_value,
and spend (with currency, or --currency), written per asset, placement and day (a day imported again
replaces its spend).
Each count becomes that many events spread evenly over the day (the minute shape is not known; day
totals are exact), with ids derived from tenant, ad, day, kind and position, so a re-import of the
same export adds nothing. Other columns (reach, ...) are ignored and named in the summary.
Exit status: 0 all rows written (or already there), 1 some rows refused, 2 usage or server error.`;

const FIELDS = ['event_id', 'tenant_id', 'campaign_id', 'asset_id', 'kind', 'value', 'occurred_at', 'channel', 'placement', 'region', 'device', 'edge_node'];
const NUMERIC = new Set(['value']);
const MAX_ATTEMPTS = 6;

type Format = 'ndjson' | 'csv' | 'parquet';

export interface ImportSummary {
  rows: number;
  inserted: number;
  new: number;
  duplicates: number;
  rejected: number;
  /** Daily exports: asset-days of spend written (or, on a dry run, valid). */
  spendDays: number;
  dryRun: boolean;
}

interface SourceRow {
  /** 1-based row (line) number in the file, header excluded for CSV. */
  row: number;
  value: unknown;
  /** Bytes of the file read so far, for progress (undefined where unknown). */
  position?: number;
}

interface ServerResult {
  inserted: number;
  new: number;
  duplicates: number;
  rejected: number;
  rejections: { index: number; reason: string; field?: string; message: string; event_id?: string }[];
}

/** `client`: AFTERGLOW_URL / AFTERGLOW_API_KEY from the config (read only when --url or --key is not given). */
export async function runImportCommand(
  argv: string[],
  out: NodeJS.WritableStream = process.stdout,
  err: NodeJS.WritableStream = process.stderr,
  client?: ClientSettings,
): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        tenant: { type: 'string' },
        campaign: { type: 'string' },
        map: { type: 'string' },
        format: { type: 'string' },
        url: { type: 'string' },
        key: { type: 'string' },
        batch: { type: 'string' },
        'dry-run': { type: 'boolean', default: false },
        rejects: { type: 'string' },
        currency: { type: 'string' },
        quiet: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
    });
  } catch (e) {
    err.write(`${(e as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    out.write(`${USAGE}\n`);
    return 0;
  }
  const [what, file] = positionals;
  if ((what !== 'events' && what !== 'daily') || !file || positionals.length > 2) {
    err.write(`${USAGE}\n`);
    return 2;
  }
  const format = (values.format ?? formatOf(file)) as Format | undefined;
  if (!format || !['ndjson', 'csv', 'parquet'].includes(format)) {
    err.write(`cannot tell the format of ${file}; pass --format ndjson|csv|parquet\n`);
    return 2;
  }
  const batch = Number(values.batch ?? 5000);
  if (!Number.isInteger(batch) || batch < 1 || batch > 50_000) {
    err.write('--batch must be an integer from 1 to 50000\n');
    return 2;
  }
  let renames: Map<string, string>;
  try {
    renames = parseMap(values.map);
  } catch (e) {
    err.write(`${(e as Error).message}\n`);
    return 2;
  }
  const settings = values.url === undefined || values.key === undefined ? (client ?? loadConfig(process.env).client) : undefined;
  const base = (values.url ?? settings?.url ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');
  const key = values.key ?? settings?.apiKey;
  const dryRun = values['dry-run'];
  const rejectsOut = values.rejects ? createWriteStream(values.rejects) : undefined;
  const progress = new Progress(err, !values.quiet, format === 'parquet' ? undefined : statSync(file).size);
  const summary: ImportSummary = { rows: 0, inserted: 0, new: 0, duplicates: 0, rejected: 0, spendDays: 0, dryRun };
  const shown: string[] = [];
  try {
    let pending: SourceRow[] = [];
    const report = async (line: { row: number; reason: string; field?: string; message: string }): Promise<void> => {
      summary.rejected++;
      if (rejectsOut) await write(rejectsOut, `${JSON.stringify(line)}\n`);
      if (shown.length < 10) shown.push(`  row ${line.row}: ${line.reason}${line.field ? ` (${line.field})` : ''}: ${line.message}`);
    };
    const send = async (): Promise<void> => {
      const sent = pending;
      pending = [];
      const result = await post<ServerResult>(base, key, sent, dryRun);
      summary.inserted += result.inserted;
      summary.new += result.new;
      summary.duplicates += result.duplicates;
      for (const r of result.rejections) {
        await report({ row: sent[r.index]?.row ?? -1, reason: r.reason, ...(r.field ? { field: r.field } : {}), message: r.message });
      }
      progress.update(summary, sent[sent.length - 1]?.position);
    };
    const ignored = new Set<string>();
    let spendRows: SourceRow[] = [];
    const sendSpend = async (): Promise<void> => {
      const sent = spendRows;
      spendRows = [];
      const result = await post<{ written: number; rejections: ServerResult['rejections'] }>(base, key, sent, dryRun, 'importSpend', (r) => typeof r.written === 'number');
      summary.spendDays += dryRun ? sent.length - result.rejections.length : result.written;
      for (const r of result.rejections) {
        await report({ row: sent[r.index]?.row ?? -1, reason: r.reason, ...(r.field ? { field: r.field } : {}), message: `spend: ${r.message}` });
      }
    };
    for await (const source of readRows(file, format, progress)) {
      summary.rows++;
      let events: unknown[];
      try {
        events = what === 'daily' ? expandDaily(source.value, renames, values.tenant, values.campaign, ignored) : [toEvent(source.value, renames, values.tenant, values.campaign)];
      } catch (e) {
        if (!(e instanceof RowError)) throw e;
        await report({ row: source.row, reason: 'invalid_row', field: e.field, message: e.message });
        continue;
      }
      for (const value of events) {
        pending.push({ ...source, value });
        if (pending.length >= batch) await send();
      }
      const spend = what === 'daily' ? dailySpend(source.value, renames, values.tenant, values.campaign, values.currency) : undefined;
      if (spend) {
        spendRows.push({ ...source, value: spend });
        if (spendRows.length >= batch) await sendSpend();
      }
    }
    if (spendRows.length > 0) await sendSpend();
    if (ignored.size > 0) err.write(`columns not imported: ${[...ignored].sort().join(', ')}\n`);
    if (pending.length > 0) await send();
  } catch (e) {
    progress.done();
    err.write(`import stopped after ${summary.rows} rows: ${(e as Error).message}\n`);
    err.write('Nothing is counted twice: run the same command again to finish (rows already written are skipped).\n');
    return 2;
  } finally {
    if (rejectsOut) await new Promise<void>((resolve) => rejectsOut.end(resolve));
  }
  progress.done();
  const verb = dryRun ? 'would write' : 'wrote';
  out.write(
    `${summary.rows} rows${what === 'daily' ? ` (${summary.new + summary.duplicates + summary.rejected} events)` : ''}: ${verb} ${dryRun ? summary.new : summary.inserted}, already stored ${summary.duplicates}, refused ${summary.rejected}` +
      `${summary.spendDays > 0 ? `; spend for ${summary.spendDays} asset-days` : ''}${dryRun ? ' (dry run: nothing written)' : ''}\n`,
  );
  if (summary.rejected > 0) {
    out.write(`${shown.join('\n')}\n${summary.rejected > shown.length ? `  ... ${values.rejects ? `all in ${values.rejects}` : 'pass --rejects FILE for all'}\n` : ''}`);
  }
  return summary.rejected > 0 ? 1 : 0;
}

function formatOf(file: string): Format | undefined {
  const ext = path.extname(file.replace(/\.gz$/, '')).toLowerCase();
  if (ext === '.ndjson' || ext === '.jsonl' || ext === '.json') return 'ndjson';
  if (ext === '.csv') return 'csv';
  if (ext === '.parquet') return 'parquet';
  return undefined;
}

function parseMap(spec: string | undefined): Map<string, string> {
  const renames = new Map<string, string>();
  for (const pair of (spec ?? '').split(',').filter(Boolean)) {
    const [from, to, ...rest] = pair.split('=');
    const targets = [...FIELDS, 'date', 'conversion_value', 'spend', 'currency', ...Object.keys(DAILY_COUNTS)];
    if (!from || !to || rest.length > 0 || !targets.includes(to)) {
      throw new Error(`--map ${JSON.stringify(pair)}: expected FROM=TO with TO one of ${targets.join(', ')}`);
    }
    renames.set(from, to);
  }
  return renames;
}

async function* readRows(file: string, format: Format, progress: Progress): AsyncGenerator<SourceRow> {
  if (format === 'parquet') {
    const buffer = await asyncBufferFromFile(file);
    const metadata = await parquetMetadataAsync(buffer);
    const total = Number(metadata.num_rows);
    progress.total = total;
    const step = 10_000;
    for (let start = 0; start < total; start += step) {
      const rows = await parquetReadObjects({ file: buffer, metadata, compressors, rowStart: start, rowEnd: Math.min(total, start + step) });
      for (let i = 0; i < rows.length; i++) yield { row: start + i + 1, value: rows[i] };
    }
    return;
  }
  const stream = createReadStream(file);
  if (format === 'csv') {
    const parser = stream.pipe(parseCsv({ columns: true, skip_empty_lines: true, trim: true, relax_column_count: false }));
    let row = 0;
    for await (const record of parser) yield { row: ++row, value: record as Record<string, string>, position: stream.bytesRead };
    return;
  }
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  let row = 0;
  for await (const line of lines) {
    row++;
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      // Sent as is: the server refuses it as undecodable, and the report names the line.
      value = line;
    }
    yield { row, value, position: stream.bytesRead };
  }
}

/** A row as an event: renamed columns, defaults filled, CSV strings typed, an id when it has none. */
export function toEvent(input: unknown, renames: ReadonlyMap<string, string>, tenant?: string, campaign?: string): unknown {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return input;
  const event: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(input)) {
    const name = renames.get(k) ?? k;
    if (v === null || v === undefined || v === '') continue;
    event[name] = typeof v === 'bigint' ? Number(v) : v instanceof Date ? v.getTime() : v;
  }
  if (event.tenant_id === undefined && tenant) event.tenant_id = tenant;
  if (event.campaign_id === undefined && campaign) event.campaign_id = campaign;
  for (const f of NUMERIC) if (typeof event[f] === 'string' && /^\d+(\.\d+)?$/.test(event[f])) event[f] = Number(event[f]);
  if (typeof event.occurred_at === 'string' && /^\d+$/.test(event.occurred_at)) event.occurred_at = Number(event.occurred_at);
  if (event.event_id === undefined) event.event_id = contentId(event);
  return event;
}

/** Count columns of a daily export and the event kind each becomes. */
const DAILY_COUNTS: Record<string, EventKindName> = {
  impressions: 'impression',
  views: 'view',
  clicks: 'click',
  likes: 'like',
  shares: 'share',
  comments: 'comment',
  conversions: 'conversion',
};
type EventKindName = 'impression' | 'view' | 'click' | 'like' | 'share' | 'comment' | 'conversion';
const DAILY_KEYS = new Set(['date', 'tenant_id', 'campaign_id', 'asset_id', 'conversion_value', 'spend', 'currency', 'channel', 'placement', 'region', 'device']);

/** The spend of one daily-export row, as a POST /v1/import/spend row (the server validates it), or undefined without a spend column. */
export function dailySpend(input: unknown, renames: ReadonlyMap<string, string>, tenant?: string, campaign?: string, currency?: string): Record<string, unknown> | undefined {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return undefined;
  const row: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(input)) row[renames.get(k) ?? k] = v;
  if (row.spend === undefined || row.spend === null || row.spend === '') return undefined;
  const spend = typeof row.spend === 'string' && /^\d+(\.\d+)?$/.test(row.spend) ? Number(row.spend) : row.spend;
  const out: Record<string, unknown> = {
    campaign_id: row.campaign_id ?? campaign,
    asset_id: row.asset_id,
    date: row.date instanceof Date ? row.date.toISOString().slice(0, 10) : row.date,
    spend,
    currency: row.currency || currency || 'USD',
  };
  if (row.tenant_id ?? tenant) out.tenant_id = row.tenant_id ?? tenant;
  if (row.placement) out.placement = row.placement;
  return out;
}
/** More than this many events from one row is a unit mistake (e.g. micros), not a day of one ad. */
const MAX_DAILY_COUNT = 10_000_000;
const DAY_MS = 86_400_000;

/** A row the command itself cannot turn into events; reported like a server refusal. */
export class RowError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * One row of a daily export as events: each count as that many events of its kind spread evenly
 * over the day; conversion_value is shared evenly by the day's conversions. Throws RowError for a
 * row without a date or with a count that is not a whole number.
 */
export function expandDaily(input: unknown, renames: ReadonlyMap<string, string>, tenant?: string, campaign?: string, ignored?: Set<string>): unknown[] {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return [input];
  const row: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(input)) {
    const name = renames.get(k) ?? k;
    row[name] = typeof v === 'bigint' ? Number(v) : v;
    if (!(name in DAILY_COUNTS) && !DAILY_KEYS.has(name)) ignored?.add(name);
  }
  const date = row.date instanceof Date ? row.date.toISOString().slice(0, 10) : String(row.date ?? '');
  const dayStart = /^\d{4}-\d{2}-\d{2}$/.test(date) ? Date.parse(`${date}T00:00:00Z`) : Number.NaN;
  const base: Record<string, unknown> = {
    tenant_id: row.tenant_id ?? tenant,
    campaign_id: row.campaign_id ?? campaign,
    asset_id: row.asset_id,
  };
  for (const f of ['channel', 'placement', 'region', 'device']) if (row[f] !== undefined && row[f] !== '') base[f] = row[f];
  // Read back to refuse dates JavaScript rolls over (2026-02-30 parses as March 2nd).
  if (Number.isNaN(dayStart) || new Date(dayStart).toISOString().slice(0, 10) !== date) throw new RowError('date', `date ${JSON.stringify(date).slice(0, 40)} is not YYYY-MM-DD`);
  const events: unknown[] = [];
  const conversions = Number(row.conversions ?? 0);
  const conversionValue = Number(row.conversion_value ?? 0);
  for (const [column, kind] of Object.entries(DAILY_COUNTS)) {
    const raw = row[column];
    if (raw === undefined || raw === '' || raw === null) continue;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 0 || n > MAX_DAILY_COUNT) {
      throw new RowError(column, `${column} ${JSON.stringify(String(raw)).slice(0, 40)} is not a whole number from 0 to ${MAX_DAILY_COUNT}`);
    }
    for (let i = 0; i < n; i++) {
      const event: Record<string, unknown> = {
        ...base,
        kind,
        // Spread evenly, each in the middle of its share of the day.
        occurred_at: dayStart + Math.floor(((i + 0.5) * DAY_MS) / n),
        event_id: contentId({ t: base.tenant_id, c: base.campaign_id, a: base.asset_id, date, kind, i }),
      };
      if (kind === 'conversion' && conversionValue > 0 && conversions > 0) event.value = conversionValue / conversions;
      events.push(event);
    }
  }
  return events;
}

/**
 * A UUID (version 8, name-based) from the event's content, so the same row always gets the same id
 * and a second import of it is found as already stored. Two identical rows are one event.
 */
export function contentId(event: Record<string, unknown>): string {
  const canonical = JSON.stringify(Object.keys(event).sort().map((k) => [k, event[k]]));
  const h = createHash('sha256').update(canonical).digest();
  h[6] = (h[6]! & 0x0f) | 0x80;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const hex = h.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

async function post<T extends { rejections: ServerResult['rejections'] }>(
  base: string,
  key: string | undefined,
  rows: SourceRow[],
  dryRun: boolean,
  route: 'importEvents' | 'importSpend' = 'importEvents',
  answered: (r: Record<string, unknown>) => boolean = (r) => typeof r.new === 'number',
): Promise<T> {
  const body = gzipSync(rows.map((r) => (typeof r.value === 'string' ? r.value.replace(/[\r\n]/g, ' ') : JSON.stringify(r.value))).join('\n'));
  const api = createApiClient({ baseUrl: base, apiKey: key });
  const args = { body, headers: { 'content-type': 'application/x-ndjson', 'content-encoding': 'gzip' }, query: dryRun ? { dry_run: true } : {} };
  let delay = 250;
  for (let attempt = 1; ; attempt++) {
    let result: unknown;
    let status = 200;
    try {
      result = await api[route](args);
    } catch (e) {
      if (!(e instanceof ApiError)) {
        if (attempt >= MAX_ATTEMPTS) throw new Error(`server unreachable at ${base}: ${(e as Error).message}`);
        await sleep(delay);
        delay *= 2;
        continue;
      }
      // 422: every row refused; the body still says why, row by row.
      if (e.status === 422 && e.body !== undefined) {
        result = e.body;
        status = 422;
      }
      // The same batch is re-sent with the same ids: a retry after a lost answer writes nothing twice.
      else if ((e.status === 429 || e.status >= 500) && attempt < MAX_ATTEMPTS) {
        await sleep(e.retryAfterMs ?? delay);
        delay *= 2;
        continue;
      } else throw new Error(`HTTP ${e.status}: ${(e.body !== undefined ? JSON.stringify(e.body) : e.message).slice(0, 300)}`);
    }
    if (answered(result as Record<string, unknown>)) return result as T;
    throw new Error(`HTTP ${status}: ${JSON.stringify(result).slice(0, 300)}`);
  }
}

function write(stream: WriteStream, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (stream.write(text)) resolve();
    else stream.once('drain', resolve).once('error', reject);
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** One line on stderr: rewritten in place on a terminal, a line every few seconds otherwise. */
class Progress {
  total: number | undefined;
  private lastAt = 0;
  private shown = false;

  constructor(
    private readonly err: NodeJS.WritableStream,
    private readonly on: boolean,
    private readonly bytes: number | undefined,
  ) {}

  update(s: ImportSummary, position: number | undefined): void {
    if (!this.on) return;
    const tty = (this.err as { isTTY?: boolean }).isTTY === true;
    const now = Date.now();
    if (!tty && now - this.lastAt < 5_000) return;
    this.lastAt = now;
    const share = this.total ? s.rows / this.total : this.bytes && position !== undefined ? position / this.bytes : undefined;
    const pct = share === undefined ? '' : ` ${(Math.min(1, share) * 100).toFixed(1)}%`;
    const line = `import${pct}: ${s.rows} rows, ${s.dryRun ? 'new' : 'written'} ${s.dryRun ? s.new : s.inserted}, already stored ${s.duplicates}, refused ${s.rejected}`;
    this.err.write(tty ? `\r${line}\u001b[K` : `${line}\n`);
    this.shown = tty;
  }

  done(): void {
    if (this.shown) this.err.write('\n');
    this.shown = false;
  }
}
