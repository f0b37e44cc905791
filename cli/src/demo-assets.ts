import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { mulberry32, type Logger, type PredictSettings, type Store } from '@afterglow/core';
import { ApiError, createApiClient } from '@afterglow/core/api';
import { DEMO_CAMPAIGNS, DEMO_TENANT, DemoGenerator, type DemoLaunch } from './demo.js';
import { DEMO_VIDEO_ADS, DemoVideoPlays, renderDemoVideo } from './demo-video.js';

/**
 * The demo's creatives and rules, made through the real API so the dashboard's tie review, triggers
 * and scores have something to show: per campaign a few procedural master "photos" (sharp: layered
 * gradients, a horizon, shapes, text and grain; distinct per seed so the tie engine can rank them)
 * and one ad per demo creative cut from them with the tie dataset's ad renderer, under the asset_ids
 * the demo's events use; a relaunched creative's new variant is registered too (a few per creative).
 * Then the video ads (demo-video.ts), whose plays are sent from the start.
 * Plus a fatigue and an under-performance trigger rule per campaign. Runs in the background after
 * the server listens; images are deterministic, so a restart re-registers idempotently.
 */

export const DEMO_MASTERS_PER_CAMPAIGN = 3;
/** Variants registered per creative when it is relaunched (later ones only send events). */
const MAX_REGISTERED_VARIANT = 4;

export interface DemoSeedReport {
  rules: number;
  masters: number;
  ads: number;
  failed: number;
  ms: number;
}

export interface DemoSeedOptions {
  baseUrl: string;
  log: Logger;
  /** A read+admin credential for the demo tenant ({} with auth off). */
  headers?: Record<string, string>;
  /** Where the generated masters are written for the ad renderer. */
  workDir: string;
  /** Register masters and ads (needs the inference role). */
  assets: boolean;
  /** Create the trigger rules (needs the live role). */
  rules: boolean;
  mastersPerCampaign?: number;
}

export interface DemoSeeder {
  /** Resolves when the rules and the initial masters and ads are in (failures are counted and logged). */
  done: Promise<DemoSeedReport>;
  /** Registers a relaunched creative's new variant (after the initial seeding). */
  onLaunch(launch: DemoLaunch): void;
  stop(): void;
}

/** The demo's rules: every campaign gets a fatigue and an under-performance rule with a short cooldown. */
export function demoRules(): { rule_id: string; body: Record<string, unknown> }[] {
  return DEMO_CAMPAIGNS.flatMap((c) => [
    {
      rule_id: `demo-fatigue-${c.id}`,
      body: { tenant_id: DEMO_TENANT, campaign_id: c.id, kind: 'fatigue', params: { fraction: 0.5, within_ms: 2 * 60_000, min_impressions: 200 }, cooldown_ms: 10 * 60_000 },
    },
    {
      rule_id: `demo-underperformance-${c.id}`,
      body: {
        tenant_id: DEMO_TENANT,
        campaign_id: c.id,
        kind: 'underperformance',
        params: { versus: 'campaign_median', window: '15m', margin: 0.3, min_impressions: 300 },
        cooldown_ms: 10 * 60_000,
      },
    },
  ]);
}

export function startDemoSeeder(options: DemoSeedOptions): DemoSeeder {
  const { log } = options;
  const abort = new AbortController();
  const perCampaign = options.mastersPerCampaign ?? DEMO_MASTERS_PER_CAMPAIGN;
  const masterFiles = new Map<string, string>();
  let failed = 0;

  const api = createApiClient({ baseUrl: options.baseUrl, headers: () => options.headers ?? {} });
  /** A call's answer, or its refusal (status, and the `{error, message}` body); other failures (abort, network) are thrown. */
  const answer = async (call: () => Promise<unknown>): Promise<{ ok: true; body: Record<string, unknown> } | { ok: false; status: number; body: Record<string, unknown> }> => {
    try {
      return { ok: true, body: (await call()) as Record<string, unknown> };
    } catch (err) {
      if (err instanceof ApiError) return { ok: false, status: err.status, body: (err.body ?? {}) as Record<string, unknown> };
      throw err;
    }
  };

  const register = async (fields: Record<string, string>, bytes: Buffer, filename: string): Promise<boolean> => {
    const form = new FormData();
    for (const [k, v] of Object.entries({ tenant_id: DEMO_TENANT, ...fields })) form.set(k, v);
    form.set('image', new Blob([new Uint8Array(bytes)]), filename);
    const r = await answer(() => api.registerAsset({ body: form, signal: abort.signal }));
    // 409: registered earlier with other pixels (an older demo generator); it still serves the demo.
    if (r.ok || r.status === 409) {
      log.debug({ asset: fields.asset_id, status: r.ok ? 'registered' : r.status, tying: r.body.tying }, 'demo asset registered');
      return true;
    }
    failed++;
    log.warn({ asset: fields.asset_id, status: r.status, error: r.body.error, message: r.body.message }, 'demo asset registration refused');
    return false;
  };

  const registerAd = async (campaign: string, assetId: string, format: string, channel: string, master: string): Promise<boolean> => {
    const { AD_FORMATS, renderAd } = await import('./demo-ads.js');
    const ad = await renderAd(master, forcedFormatRng(AD_FORMATS, format, seedOf(assetId)));
    return register({ role: 'ad', campaign_id: campaign, asset_id: assetId, channel, name: `${assetId} (${ad.format} ${ad.layout})` }, ad.bytes, `${assetId}.${ad.ext}`);
  };

  /** The demo's video ads (demo-video.ts), cut from the masters registered above; none when no ffmpeg is packaged here. */
  const registerVideos = async (): Promise<number> => {
    const { packagedFfmpeg } = await import('@afterglow/inference');
    const ffmpeg = packagedFfmpeg();
    if (!ffmpeg) {
      log.warn('no packaged ffmpeg on this platform: the demo registers no video ads');
      return 0;
    }
    let n = 0;
    for (const ad of DEMO_VIDEO_ADS) {
      const files = ad.masters.map((i) => masterFiles.get(demoMasterId(ad.campaign, i % perCampaign)));
      if (abort.signal.aborted || !files[0] || !files[1]) continue;
      try {
        const bytes = await renderDemoVideo(ad, [files[0], files[1]], ffmpeg);
        if (await register({ role: 'ad', campaign_id: ad.campaign, asset_id: ad.asset, channel: 'video', name: `${ad.asset} (video)` }, bytes, `${ad.asset}.mp4`)) n++;
      } catch (err) {
        failed++;
        if (!abort.signal.aborted) log.warn({ err, asset: ad.asset }, 'rendering a demo video ad failed');
      }
    }
    return n;
  };

  const seed = async (): Promise<DemoSeedReport> => {
    const t0 = performance.now();
    let rules = 0;
    let masters = 0;
    let ads = 0;
    if (options.rules) {
      for (const { rule_id, body } of demoRules()) {
        const r = await answer(() => api.putTriggerRule({ path: { rule_id }, body, signal: abort.signal }));
        if (r.ok) rules++;
        else {
          failed++;
          log.warn({ rule_id, status: r.status, error: r.body.error, message: r.body.message }, 'demo trigger rule refused');
        }
      }
      log.info({ rules }, 'demo trigger rules in place');
    }
    if (options.assets) {
      log.info(
        { masters: DEMO_CAMPAIGNS.length * perCampaign, ads: DEMO_CAMPAIGNS.reduce((n, c) => n + c.formats.length, 0) },
        'registering demo assets in the background (the tie model is built on first use if missing, which can take a minute)',
      );
      mkdirSync(options.workDir, { recursive: true });
      for (const c of DEMO_CAMPAIGNS) {
        for (let i = 0; i < perCampaign; i++) {
          if (abort.signal.aborted) break;
          const id = demoMasterId(c.id, i);
          const bytes = await demoPhoto(seedOf(id), i % 3 === 2 ? { width: 900, height: 1200 } : { width: 1280, height: 853 });
          const file = path.join(options.workDir, `${id}.jpg`);
          writeFileSync(file, bytes);
          masterFiles.set(id, file);
          if (await register({ role: 'master', asset_id: id, name: `${c.id} shoot ${i + 1}` }, bytes, `${id}.jpg`)) masters++;
        }
      }
      log.info({ masters, ms: Math.round(performance.now() - t0) }, 'demo masters registered');
      // No master at all (say the tie model could not be built): the ads would fail the same way.
      if (masters === 0) log.warn('no demo master could be registered (see the warnings above); skipping the demo ads');
      else {
        for (const c of DEMO_CAMPAIGNS) {
          for (const [i, format] of c.formats.entries()) {
            if (abort.signal.aborted) break;
            const assetId = `${c.id}-${format}`;
            if (await registerAd(c.id, assetId, format, c.channel, masterFiles.get(demoMasterId(c.id, i % perCampaign))!)) ads++;
          }
        }
        if (!abort.signal.aborted) ads += await registerVideos();
      }
    }
    const report = { rules, masters, ads, failed, ms: Math.round(performance.now() - t0) };
    log.info(report, 'demo assets and rules ready');
    return report;
  };

  const done = seed().catch((err: unknown) => {
    if (!abort.signal.aborted) log.warn({ err }, 'seeding the demo assets stopped');
    return { rules: 0, masters: 0, ads: 0, failed: failed + 1, ms: 0 };
  });

  return {
    done,
    onLaunch(launch) {
      if (!options.assets || launch.variant < 2 || launch.variant > MAX_REGISTERED_VARIANT) return;
      void done.then(async () => {
        const campaign = DEMO_CAMPAIGNS.find((c) => c.id === launch.campaign);
        const index = campaign?.formats.findIndex((f) => launch.base === `${launch.campaign}-${f}`) ?? -1;
        const master = masterFiles.get(demoMasterId(launch.campaign, Math.max(0, index) % perCampaign));
        if (!campaign || index < 0 || !master || abort.signal.aborted) return;
        try {
          if (await registerAd(launch.campaign, launch.asset, campaign.formats[index]!, campaign.channel, master)) log.info({ asset: launch.asset }, 'demo variant registered');
        } catch (err) {
          if (!abort.signal.aborted) log.warn({ err, asset: launch.asset }, 'registering a demo variant failed');
        }
      });
    },
    stop() {
      abort.abort();
    },
  };
}

export interface DemoHandle {
  generator: DemoGenerator;
  /** The demo video ads' plays. */
  videoPlays: DemoVideoPlays;
  seeder: DemoSeeder;
  stop(): void;
}

/** How often the demo tries to train the demo tenant's first performance model, and its short outcome horizon. */
const TRAIN_EVERY_MS = 60_000;
const DEMO_HORIZON_MS = 3 * 60_000;

/**
 * Trains and activates the demo tenant's performance model in this process (what `afterglow train`
 * does; embedded chDB belongs to one process) once enough demo ads have features and outcomes,
 * with a horizon of minutes instead of hours. The scoring workers see the activation and score.
 * Returns the version, or undefined while there is not enough data yet.
 */
export async function trainDemoModel(store: Store, predict: PredictSettings): Promise<{ version: string; trained: boolean } | undefined> {
  const { trainModel, ModelRegistry, ModelRepository, PredictionDataRepository, NotEnoughDataError } = await import('@afterglow/inference');
  const registry = new ModelRegistry(new ModelRepository(store), predict.modelsDir);
  // An earlier run's model (same data dir) serves: one per data dir, not one per start.
  const active = await registry.activeVersion(DEMO_TENANT);
  if (active) return { version: active, trained: false };
  try {
    const stored = await trainModel(new PredictionDataRepository(store), registry, {
      tenantId: DEMO_TENANT,
      provider: predict.features,
      horizonMs: DEMO_HORIZON_MS,
      baselineWindowMs: predict.baselineWindowMs,
      minImpressions: 100,
      members: 4,
      activate: true,
    });
    return { version: stored.card.version, trained: true };
  } catch (err) {
    if (err instanceof NotEnoughDataError) return undefined;
    throw err;
  }
}

/** The whole demo: traffic from the generator (ingest key) and the seeded assets and rules (admin key). */
export function startDemo(options: {
  baseUrl: string;
  log: Logger;
  dataDir: string;
  ingestHeaders?: Record<string, string>;
  adminHeaders?: Record<string, string>;
  assets: boolean;
  rules: boolean;
  /** Train the demo tenant's model in the background (the inference role with its scoring workers). */
  training?: { store: Store; predict: PredictSettings };
}): DemoHandle {
  const seeder = startDemoSeeder({
    baseUrl: options.baseUrl,
    log: options.log,
    ...(options.adminHeaders && { headers: options.adminHeaders }),
    workDir: path.join(options.dataDir, 'demo-assets'),
    assets: options.assets,
    rules: options.rules,
  });
  const videoPlays = new DemoVideoPlays({ baseUrl: options.baseUrl, log: options.log, ...(options.ingestHeaders && { headers: options.ingestHeaders }) });
  videoPlays.start();
  const generator = new DemoGenerator({
    baseUrl: options.baseUrl,
    log: options.log,
    ...(options.ingestHeaders && { headers: options.ingestHeaders }),
    onLaunch: (launch) => seeder.onLaunch(launch),
  });
  generator.start();
  let trainTimer: NodeJS.Timeout | undefined;
  let stopped = false;
  const training = options.training;
  if (training) {
    let tries = 0;
    const attempt = async () => {
      if (stopped) return;
      tries++;
      try {
        const model = await trainDemoModel(training.store, training.predict);
        if (model) {
          options.log.info({ ...model, tries }, model.trained ? 'demo performance model trained and activated: the scoring workers score the demo ads now' : 'demo performance model already active');
          return;
        }
        if (tries === 1) options.log.info({ every_s: TRAIN_EVERY_MS / 1000 }, 'not enough demo outcomes to train a performance model yet; retrying');
      } catch (err) {
        if (!stopped) options.log.warn({ err }, 'training the demo performance model failed; retrying');
      }
      if (!stopped) trainTimer = setTimeout(() => void attempt(), TRAIN_EVERY_MS).unref();
    };
    void seeder.done.then(() => {
      if (!stopped) trainTimer = setTimeout(() => void attempt(), DEMO_HORIZON_MS).unref();
    });
  }
  return {
    generator,
    videoPlays,
    seeder,
    stop() {
      stopped = true;
      clearTimeout(trainTimer);
      generator.stop();
      videoPlays.stop();
      seeder.stop();
    },
  };
}

export function demoMasterId(campaign: string, index: number): string {
  return `${campaign}-shoot-${index + 1}`;
}

function seedOf(id: string): number {
  return createHash('sha256').update(id).digest().readUInt32LE(0);
}

/**
 * renderAd's rng, whose first draw picks the AD_FORMATS entry closest in aspect ratio to the demo
 * format's WxH (renderAd draws the format first, weighted), then a seeded stream.
 */
function forcedFormatRng(formats: readonly { name: string; width: number; height: number; weight: number }[], demoFormat: string, seed: number): () => number {
  const m = /(\d+)x(\d+)$/.exec(demoFormat);
  const aspect = m ? Number(m[1]) / Number(m[2]) : 1;
  let best = 0;
  formats.forEach((f, i) => {
    if (Math.abs(Math.log(f.width / f.height / aspect)) < Math.abs(Math.log(formats[best]!.width / formats[best]!.height / aspect))) best = i;
  });
  const total = formats.reduce((s, f) => s + f.weight, 0);
  const before = formats.slice(0, best).reduce((s, f) => s + f.weight, 0);
  const first = (before + formats[best]!.weight / 2) / total;
  const rng = mulberry32(seed);
  let drawn = false;
  return () => {
    if (drawn) return rng();
    drawn = true;
    return first;
  };
}

/**
 * A procedural "photo": a sky gradient with a glow, layered hills, bold shapes, scattered small
 * marks (keypoints for verification), a word, and grain. Deterministic for a seed.
 */
export async function demoPhoto(seed: number, size: { width: number; height: number }): Promise<Buffer> {
  const { default: sharp } = await import('sharp');
  const rng = mulberry32(seed);
  const { width: W, height: H } = size;
  const hue = rng() * 360;
  const hsl = (h: number, s: number, l: number) => `hsl(${Math.round(((h % 360) + 360) % 360)},${Math.round(s)}%,${Math.round(l)}%)`;
  const parts: string[] = [];
  parts.push(
    `<defs><linearGradient id="sky" x1="0" y1="0" x2="${(rng() * 0.6).toFixed(2)}" y2="1">` +
      `<stop offset="0" stop-color="${hsl(hue, 50 + rng() * 40, 20 + rng() * 30)}"/>` +
      `<stop offset="${(0.4 + rng() * 0.3).toFixed(2)}" stop-color="${hsl(hue + 40 + rng() * 80, 50 + rng() * 40, 45 + rng() * 30)}"/>` +
      `<stop offset="1" stop-color="${hsl(hue + 180, 30 + rng() * 40, 60 + rng() * 30)}"/></linearGradient>` +
      `<radialGradient id="glow"><stop offset="0" stop-color="${hsl(hue + 60, 90, 85)}" stop-opacity="0.95"/><stop offset="1" stop-color="${hsl(hue + 60, 90, 70)}" stop-opacity="0"/></radialGradient></defs>`,
    `<rect width="${W}" height="${H}" fill="url(#sky)"/>`,
    `<circle cx="${Math.round(W * (0.15 + rng() * 0.7))}" cy="${Math.round(H * (0.1 + rng() * 0.35))}" r="${Math.round(Math.min(W, H) * (0.15 + rng() * 0.2))}" fill="url(#glow)"/>`,
  );
  // Hills: back to front, darker and lower.
  const layers = 2 + Math.floor(rng() * 3);
  for (let l = 0; l < layers; l++) {
    const base = H * (0.45 + (l / layers) * 0.4 + rng() * 0.08);
    const points: string[] = [`0,${H}`];
    const steps = 6 + Math.floor(rng() * 10);
    for (let s = 0; s <= steps; s++) points.push(`${Math.round((s / steps) * W)},${Math.round(base - rng() * H * 0.18)}`);
    points.push(`${W},${H}`);
    parts.push(`<polygon points="${points.join(' ')}" fill="${hsl(hue + 90 + l * 25 + rng() * 40, 25 + rng() * 40, 35 - l * 7 + rng() * 10)}"/>`);
  }
  // Bold shapes.
  const shapes = 4 + Math.floor(rng() * 5);
  for (let s = 0; s < shapes; s++) {
    const x = Math.round(rng() * W);
    const y = Math.round(rng() * H);
    const r = Math.round(Math.min(W, H) * (0.05 + rng() * 0.16));
    const fill = hsl(hue + rng() * 360, 55 + rng() * 40, 30 + rng() * 50);
    const op = (0.55 + rng() * 0.45).toFixed(2);
    const kind = Math.floor(rng() * 3);
    if (kind === 0) parts.push(`<circle cx="${x}" cy="${y}" r="${r}" fill="${fill}" fill-opacity="${op}" stroke="${hsl(hue, 20, 95)}" stroke-width="${Math.round(1 + rng() * 5)}"/>`);
    else if (kind === 1)
      parts.push(`<rect x="${x - r}" y="${y - r}" width="${2 * r}" height="${Math.round(r * (0.6 + rng()))}" fill="${fill}" fill-opacity="${op}" transform="rotate(${Math.round(rng() * 90 - 45)} ${x} ${y})"/>`);
    else parts.push(`<polygon points="${x},${y - r} ${x + r},${y + r} ${x - r},${y + Math.round(r * 0.7)}" fill="${fill}" fill-opacity="${op}"/>`);
  }
  // Small marks: texture with corners.
  for (let s = 0; s < 90; s++) {
    const x = Math.round(rng() * W);
    const y = Math.round(rng() * H);
    const r = Math.round(3 + rng() * Math.min(W, H) * 0.02);
    const fill = hsl(hue + rng() * 360, 30 + rng() * 60, 15 + rng() * 75);
    parts.push(rng() < 0.5 ? `<rect x="${x}" y="${y}" width="${r}" height="${Math.round(r * (0.5 + rng()))}" fill="${fill}"/>` : `<circle cx="${x}" cy="${y}" r="${r}" fill="${fill}"/>`);
  }
  const words = ['GLOW', 'BLOOM', 'DRIFT', 'SOLSTICE', 'TIDE', 'EMBER', 'NORTH', 'VELVET', 'ARC'];
  const word = words[Math.floor(rng() * words.length)]!;
  parts.push(
    `<text x="${Math.round(W * (0.05 + rng() * 0.3))}" y="${Math.round(H * (0.2 + rng() * 0.6))}" font-family="DejaVu Sans, sans-serif" font-weight="bold" font-size="${Math.round(Math.min(W, H) * (0.08 + rng() * 0.06))}" fill="${hsl(hue + 200, 20, 96)}" fill-opacity="0.85">${word}</text>`,
  );
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">${parts.join('')}</svg>`;
  // Grain: seeded noise at low alpha.
  const noise = Buffer.alloc(W * H * 4);
  for (let i = 0; i < noise.length; i += 4) {
    const v = Math.floor(rng() * 256);
    noise[i] = v;
    noise[i + 1] = v;
    noise[i + 2] = v;
    noise[i + 3] = 28;
  }
  return sharp(Buffer.from(svg))
    .composite([{ input: noise, raw: { width: W, height: H, channels: 4 }, blend: 'overlay' }])
    .jpeg({ quality: 88 })
    .toBuffer();
}
