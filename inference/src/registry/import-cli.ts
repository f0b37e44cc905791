/**
 * `afterglow assets import --tenant T --role master|ad [--campaign C] [--url URL] [--channel CH] DIR`:
 * registers every image and video of DIR through POST /v1/assets of a running Afterglow (the inference role),
 * a few uploads at a time, with a progress bar on stderr. Re-running it is safe: an asset that is
 * already registered answers 200. The asset id is derived from the content (masters) or campaign +
 * content (ads) unless --id-from-name is given (then the file name without extension, sanitised).
 * The API key, when auth is on, comes from AFTERGLOW_API_KEY.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { readdirSync, statSync } from 'node:fs';
import type { ClientSettings } from '@afterglow/core';
import { parseCommandArgs } from '../cli-args.js';
import { ProgressBar } from '../tie/cli.js';

/** What the registry accepts, by extension (the server checks the bytes themselves). */
const ASSET_EXT = /\.(jpe?g|png|webp|gif|tiff?|avif|mp4|m4v|mov|webm)$/i;

/** The images and videos of DIR (not its subfolders), by name. */
export function listAssetFiles(dir: string): Array<{ name: string; path: string }> {
  return readdirSync(dir)
    .filter((n) => !n.startsWith('.') && ASSET_EXT.test(n) && statSync(path.join(dir, n)).isFile())
    .sort()
    .map((name) => ({ name, path: path.join(dir, name) }));
}

export const ASSETS_USAGE = `usage: afterglow assets import --tenant T --role master|ad [--campaign C] DIR [options]

Registers every image (jpg, png, webp, gif, tiff, avif) and video (mp4, m4v, mov, webm) in DIR with a
running Afterglow's POST /v1/assets, reporting refusals (oversized, not an image or video, truncated,
codec not accepted) by file.

options:
  --url URL          server (default AFTERGLOW_URL or http://127.0.0.1:8080)
  --campaign C       campaign of the ads (required for --role ad)
  --channel CH       channel recorded on every asset
  --id-from-name     asset_id = file name without extension (default: derived from the content)
  --concurrency N    uploads in flight (default 4)
  --quiet            no progress bar
API key: AFTERGLOW_API_KEY (sent as Authorization: Bearer).`;

export interface ImportSummary {
  created: number;
  existing: number;
  refused: Array<{ file: string; status: number; error: string; message: string }>;
}

/** `io.client`: the server and key from the caller's config (AFTERGLOW_URL, AFTERGLOW_API_KEY); `--url` wins. */
export async function runAssetsCommand(
  argv: readonly string[],
  io: { stderr?: NodeJS.WritableStream & { isTTY?: boolean }; stdout?: NodeJS.WritableStream; client?: ClientSettings } = {},
): Promise<number> {
  const stderr = io.stderr ?? process.stderr;
  const stdout = io.stdout ?? process.stdout;
  const [sub, ...rest] = argv;
  if (sub !== 'import') {
    stderr.write(`${sub && sub !== '--help' && sub !== '-h' ? `unknown subcommand ${JSON.stringify(sub)}\n\n` : ''}${ASSETS_USAGE}\n`);
    return sub === '--help' || sub === '-h' ? 0 : 2;
  }
  const parsed = parseCommandArgs(
    rest,
    {
      tenant: { type: 'string' },
      role: { type: 'string' },
      campaign: { type: 'string' },
      channel: { type: 'string' },
      url: { type: 'string' },
      'id-from-name': { type: 'boolean' },
      concurrency: { type: 'string' },
      quiet: { type: 'boolean' },
    },
    ASSETS_USAGE,
    { stderr },
    true,
  );
  if (typeof parsed === 'number') return parsed;
  const { values, positionals } = parsed;
  const tenant = values.tenant as string | undefined;
  const role = values.role as string | undefined;
  const campaign = values.campaign as string | undefined;
  const dir = positionals[0];
  const usage = (msg: string) => {
    stderr.write(`${msg}\n\n${ASSETS_USAGE}\n`);
    return 2;
  };
  if (!tenant || !role || !dir || positionals.length !== 1) return usage('--tenant, --role and one DIR are required');
  if (role !== 'master' && role !== 'ad') return usage('--role must be master or ad');
  if (role === 'ad' && !campaign) return usage('--campaign is required for ads');
  if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) return usage(`${dir}: not a directory`);
  const concurrency = Number(values.concurrency ?? 4);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) return usage('--concurrency must be an integer in [1, 64]');
  const base = ((values.url as string | undefined) ?? io.client?.url ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');
  const key = io.client?.apiKey;

  const files = listAssetFiles(dir);
  const summary = await importImages(files.map((f) => f.path), {
    url: base,
    tenant,
    role,
    ...(campaign ? { campaign } : {}),
    ...(typeof values.channel === 'string' ? { channel: values.channel } : {}),
    idFromName: values['id-from-name'] === true,
    concurrency,
    ...(key ? { apiKey: key } : {}),
    progress: new ProgressBar(stderr, !values.quiet),
  });
  for (const r of summary.refused) stderr.write(`refused ${r.file}: ${r.status} ${r.error}: ${r.message}\n`);
  stdout.write(`${JSON.stringify({ files: files.length, created: summary.created, existing: summary.existing, refused: summary.refused.length })}\n`);
  return summary.refused.length > 0 ? 1 : 0;
}

export interface ImportOptions {
  url: string;
  tenant: string;
  role: 'master' | 'ad';
  campaign?: string;
  channel?: string;
  idFromName?: boolean;
  concurrency?: number;
  apiKey?: string;
  progress?: ProgressBar;
}

/** Uploads `paths` to POST /v1/assets; never throws for one file (refusals are collected). */
export async function importImages(paths: readonly string[], o: ImportOptions): Promise<ImportSummary> {
  const summary: ImportSummary = { created: 0, existing: 0, refused: [] };
  let next = 0;
  let done = 0;
  o.progress?.update('assets', 0, paths.length);
  const worker = async () => {
    while (next < paths.length) {
      const file = paths[next++]!;
      const name = path.basename(file);
      try {
        const form = new FormData();
        form.set('tenant_id', o.tenant);
        form.set('role', o.role);
        if (o.campaign) form.set('campaign_id', o.campaign);
        if (o.channel) form.set('channel', o.channel);
        form.set('name', name);
        if (o.idFromName) form.set('asset_id', idFromName(name));
        form.set('image', new Blob([await readFile(file)]), name);
        const res = await fetch(`${o.url}/v1/assets`, { method: 'POST', body: form, headers: o.apiKey ? { authorization: `Bearer ${o.apiKey}` } : {} });
        const body = (await res.json().catch(() => ({}))) as { error?: string; message?: string };
        if (res.status === 201) summary.created++;
        else if (res.status === 200) summary.existing++;
        else summary.refused.push({ file: name, status: res.status, error: body.error ?? 'error', message: body.message ?? res.statusText });
      } catch (err) {
        summary.refused.push({ file: name, status: 0, error: 'request_failed', message: (err as Error).message });
      }
      o.progress?.update('assets', ++done, paths.length);
    }
  };
  await Promise.all(Array.from({ length: Math.min(o.concurrency ?? 4, Math.max(1, paths.length)) }, worker));
  return summary;
}

/** A file name as an asset id: extension dropped, other characters than [A-Za-z0-9._:-] as '-'. */
export function idFromName(file: string): string {
  const stem = file.replace(/\.[A-Za-z0-9]+$/, '').replace(/[^A-Za-z0-9._:-]/g, '-').replace(/^[^A-Za-z0-9]+/, '');
  return (stem || 'asset').slice(0, 128);
}
