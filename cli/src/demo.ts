import { ulid, type EngagementEvent, type EventKind, type Logger } from '@afterglow/core';
import { ApiError, createApiClient, type ApiClient } from '@afterglow/core/api';

/**
 * Built-in demo traffic: a tenant with several campaigns whose creatives launch, peak and fade with
 * their own half-lives, in bursts, posted through the real HTTP intake so the whole path runs.
 * When a creative has faded it is relaunched as a fresh variant, so the demo never runs dry.
 */

export const DEMO_TENANT = 'demo';

interface Creative {
  campaign: string;
  asset: string;
  channel: string;
  placement: string;
  launchedAt: number;
  /** Seconds from launch to peak interest. */
  rampS: number;
  halfLifeS: number;
  /** Peak impressions per second. */
  peakRate: number;
  ctr: number;
  variant: number;
  /** Fades slowly (a long, clear decay: what the fatigue rules look for). */
  slow: boolean;
}

/** A creative (re)launched as a new variant (`asset` = `base` or `base-vN`). */
export interface DemoLaunch {
  campaign: string;
  base: string;
  asset: string;
  variant: number;
}

export const DEMO_CAMPAIGNS: readonly { id: string; formats: string[]; channel: string }[] = [
  { id: 'spring-sale', formats: ['banner-728x90', 'mpu-300x250', 'story-1080x1920', 'post-1080x1080', 'skyscraper-160x600', 'link-1200x628'], channel: 'display' },
  { id: 'summer-launch', formats: ['story-1080x1920', 'post-1080x1080', 'skyscraper-160x600', 'link-1200x628', 'banner-728x90', 'mpu-300x250'], channel: 'social' },
  { id: 'brand-awareness', formats: ['billboard-1920x1080', 'banner-728x90', 'post-1080x1080', 'story-1080x1920', 'link-1200x628'], channel: 'dooh' },
];
const REGIONS = ['eu-west', 'eu-north', 'us-east', 'apac'];
const DEVICES = ['mobile', 'desktop', 'tablet', 'billboard'];

export interface DemoOptions {
  baseUrl: string;
  log: Logger;
  tickMs?: number;
  /** Multiplies every creative's rate (benchmarks and tests turn it up or down). */
  intensity?: number;
  random?: () => number;
  /** Sent with every request (the demo tenant's ingest key). */
  headers?: Record<string, string>;
  /** Told of every relaunch (a new variant), e.g. to register its image. */
  onLaunch?: (launch: DemoLaunch) => void;
}

export class DemoGenerator {
  private readonly creatives: Creative[] = [];
  private timer: NodeJS.Timeout | undefined;
  private burstUntil = 0;
  private inFlight = false;
  private readonly random: () => number;
  sent = 0;
  /** Events in posts the server refused (HTTP status not ok), and in posts that failed outright. */
  refused = 0;
  failed = 0;
  /** Status of the last refused post. */
  lastRefusal: number | undefined;

  private readonly api: ApiClient;

  constructor(private readonly options: DemoOptions) {
    this.random = options.random ?? Math.random;
    this.api = createApiClient({ baseUrl: options.baseUrl, headers: () => options.headers ?? {} });
    const now = Date.now();
    for (const c of DEMO_CAMPAIGNS) {
      // The first creative of each campaign fades slowly; the rest come and go faster.
      c.formats.forEach((format, i) => this.creatives.push(this.launch(c.id, c.channel, `${c.id}-${format}`, now - i * 45_000, 1, i === 0)));
    }
  }

  start(): void {
    const tick = this.options.tickMs ?? 250;
    this.timer = setInterval(() => void this.tick(tick), tick);
    this.timer.unref();
    this.options.log.info({ tenant: DEMO_TENANT, creatives: this.creatives.length }, 'demo traffic started');
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** One tick's events (exported for tests through `generate`). */
  generate(now: number, tickMs: number): EngagementEvent[] {
    const events: EngagementEvent[] = [];
    if (now > this.burstUntil && this.random() < tickMs / 20_000) this.burstUntil = now + 4_000 + this.random() * 8_000;
    const burst = now < this.burstUntil ? 4 : 1;
    for (let i = 0; i < this.creatives.length; i++) {
      let c = this.creatives[i]!;
      const interest = this.interest(c, now);
      if (now - c.launchedAt > c.rampS * 1000 && interest < 0.04) {
        const base = c.asset.replace(/-v\d+$/, '');
        c = this.launch(c.campaign, c.channel, base, now, c.variant + 1, c.slow);
        this.creatives[i] = c;
        this.options.onLaunch?.({ campaign: c.campaign, base, asset: c.asset, variant: c.variant });
      }
      const rate = c.peakRate * interest * burst * (this.options.intensity ?? 1);
      const impressions = poisson(rate * (tickMs / 1000), this.random);
      const region = REGIONS[Math.floor(this.random() * REGIONS.length)]!;
      const device = c.channel === 'dooh' ? 'billboard' : DEVICES[Math.floor(this.random() * 3)]!;
      const emit = (kind: EventKind, value = 1) =>
        events.push({
          event_id: ulid(now),
          tenant_id: DEMO_TENANT,
          campaign_id: c.campaign,
          asset_id: c.asset,
          kind,
          value,
          occurred_at: now - Math.floor(this.random() * tickMs),
          received_at: 0,
          channel: c.channel,
          placement: c.placement,
          region,
          device,
        });
      for (let n = 0; n < impressions; n++) {
        emit('impression');
        if (this.random() < 0.55) emit('view');
        if (this.random() < 0.3) emit('dwell', Math.round(800 + this.random() * 6000));
        if (this.random() < c.ctr) {
          emit('click');
          if (this.random() < 0.04) emit('conversion', Math.round(20 + this.random() * 180));
        }
        if (this.random() < c.ctr * 0.8) emit('like');
        if (this.random() < c.ctr * 0.15) emit('share');
        if (this.random() < c.ctr * 0.1) emit('comment');
      }
    }
    return events;
  }

  private async tick(tickMs: number): Promise<void> {
    if (this.inFlight) return; // never queue behind a slow server: skip the tick instead
    const events = this.generate(Date.now(), tickMs);
    if (events.length === 0) return;
    this.inFlight = true;
    try {
      await this.api.postEvents({ body: events });
      this.sent += events.length;
    } catch (err) {
      if (err instanceof ApiError) {
        this.refused += events.length;
        this.lastRefusal = err.status;
        this.options.log.warn({ status: err.status, error: err.code }, 'demo post refused');
      } else {
        this.failed += events.length;
        this.options.log.debug({ err }, 'demo post failed');
      }
    } finally {
      this.inFlight = false;
    }
  }

  /** Rises linearly to 1 at the peak, then halves every half-life. */
  private interest(c: Creative, now: number): number {
    const age = (now - c.launchedAt) / 1000;
    if (age < 0) return 0;
    if (age < c.rampS) return age / c.rampS;
    return 2 ** (-(age - c.rampS) / c.halfLifeS);
  }

  private launch(campaign: string, channel: string, base: string, at: number, variant: number, slow: boolean): Creative {
    return {
      campaign,
      asset: variant > 1 ? `${base}-v${variant}` : base,
      channel,
      placement: base.split('-').slice(-1)[0]!,
      launchedAt: at,
      rampS: slow ? 30 + this.random() * 20 : 20 + this.random() * 40,
      halfLifeS: slow ? 150 + this.random() * 120 : 90 + this.random() * 600,
      peakRate: slow ? 50 + this.random() * 50 : 20 + this.random() * 80,
      ctr: 0.005 + this.random() * 0.035,
      variant,
      slow,
    };
  }
}

function poisson(lambda: number, random: () => number): number {
  if (lambda <= 0) return 0;
  if (lambda > 30) return Math.max(0, Math.round(lambda + Math.sqrt(lambda) * gaussian(random)));
  const l = Math.exp(-lambda);
  let k = 0;
  let p = 1;
  do {
    k++;
    p *= random();
  } while (p > l);
  return k - 1;
}

function gaussian(random: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}
