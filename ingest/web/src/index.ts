import { Sender, type WebEvent } from './sender.js';
import { VideoPlays } from './video.js';
import { DISPLAY_RULE, VIDEO_RULE, ViewabilityTimer, type Clock } from './viewability.js';

export { DISPLAY_RULE, VIDEO_RULE, ViewabilityTimer, type Clock, type ViewabilityRule, type ViewabilityEvents } from './viewability.js';
export type { WebEvent } from './sender.js';
export { VideoPlays, type VideoKind } from './video.js';

/**
 * @afterglow/web: measures the creatives a page marks and sends their events to Afterglow. It
 * renders nothing. A creative is any element with
 *
 *   data-afterglow-asset="ASSET_ID" data-afterglow-campaign="CAMPAIGN_ID" [data-afterglow-placement="P"] [data-afterglow-video]
 *
 * (a <video> element, or one marked data-afterglow-video, follows the video rule). It sends
 *   impression  once per creative and page view, when the MRC/IAB rule is met (see viewability.ts)
 *   click       each click on the creative
 *   dwell       after an impression, each continuous period in view (value: milliseconds)
 * and for a <video> (the element itself, or the first one inside a data-afterglow-video creative) its
 * plays: video_start, video_seconds 3, video_progress 25/50/75, video_complete, video_watch (video.ts).
 */
export interface AfterglowOptions {
  /** Base URL of an Afterglow ingest server, e.g. https://ingest.example.com */
  endpoint: string;
  /** A public web key: ingest-only, restricted to this site's origins (afterglow keys create --origins). */
  key: string;
  tenant: string;
  /** Campaign for creatives that carry no data-afterglow-campaign. */
  campaign?: string;
  /** Nothing is observed or sent until consent(true). */
  requireConsent?: boolean;
  /** Do-Not-Track / Global Privacy Control turn the SDK off (default true). */
  respectDoNotTrack?: boolean;
  channel?: string;
  batchSize?: number;
  flushIntervalMs?: number;
  maxRetries?: number;
  retryBaseMs?: number;
  /** Where to look for creatives (default: the document). */
  root?: ParentNode;
  onError?: (error: { status?: number; message: string; events: number }) => void;
}

export interface Tracker {
  /** Record the visitor's consent decision (only matters with requireConsent). */
  consent(granted: boolean): void;
  /** Send what is queued now. */
  flush(): void;
  /** Look for creatives added outside the observed root's subtree changes (normally automatic). */
  scan(): void;
  /** Stop observing; queued events are sent. */
  stop(): void;
}

const ATTR = 'data-afterglow-asset';
const SELECTOR = `[${ATTR}]`;
/** Callbacks at every quarter, so a crossing of 50 % is always reported. */
const THRESHOLDS = [0, 0.25, 0.5, 0.75, 1];

const browserClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

function uuid(): string {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  // Insecure contexts (plain http on a public host) lack randomUUID: a v4 UUID by hand.
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function doNotTrack(): boolean {
  const n = navigator as Navigator & { globalPrivacyControl?: boolean; msDoNotTrack?: string };
  const w = window as Window & { doNotTrack?: string };
  return n.doNotTrack === '1' || n.doNotTrack === 'yes' || w.doNotTrack === '1' || n.msDoNotTrack === '1' || n.globalPrivacyControl === true;
}

interface Creative {
  timer: ViewabilityTimer;
  click: () => void;
  plays?: VideoPlays;
  unlisten?: () => void;
}

const PLAYER_EVENTS = ['playing', 'pause', 'timeupdate', 'ended'] as const;

export function init(options: AfterglowOptions): Tracker {
  const inert: Tracker = { consent() {}, flush() {}, scan() {}, stop() {} };
  if (options.respectDoNotTrack !== false && doNotTrack()) return inert;
  const url = `${options.endpoint.replace(/\/+$/, '')}/v1/events?access_token=${encodeURIComponent(options.key)}`;
  const sender = new Sender({
    url,
    batchSize: options.batchSize ?? 20,
    flushIntervalMs: options.flushIntervalMs ?? 5000,
    maxRetries: options.maxRetries ?? 4,
    retryBaseMs: options.retryBaseMs ?? 1000,
    onError: options.onError,
  });
  const root = options.root ?? document;
  const creatives = new Map<Element, Creative>();
  let started = false;
  let stopped = false;

  const pageVisible = () => document.visibilityState !== 'hidden';
  // performance.now() drives the rule; events carry wall-clock time.
  const wallClock = (at: number) => Math.round(performance.timeOrigin + at);

  function send(el: Element, kind: WebEvent['kind'], value: number, at: number): void {
    const asset = el.getAttribute(ATTR);
    const campaign = el.getAttribute('data-afterglow-campaign') ?? options.campaign;
    if (!asset || !campaign) return;
    const placement = el.getAttribute('data-afterglow-placement');
    sender.push({
      event_id: uuid(),
      tenant_id: options.tenant,
      campaign_id: campaign,
      asset_id: asset,
      kind,
      value,
      occurred_at: wallClock(at),
      channel: options.channel ?? 'web',
      ...(placement ? { placement } : {}),
    });
  }

  const io = new IntersectionObserver(
    (entries) => {
      for (const entry of entries) creatives.get(entry.target)?.timer.setRatio(entry.isIntersecting ? entry.intersectionRatio : 0, entry.time);
    },
    { threshold: THRESHOLDS },
  );

  function track(el: Element): void {
    if (creatives.has(el)) return;
    const video = el.tagName === 'VIDEO' || el.hasAttribute('data-afterglow-video');
    const timer = new ViewabilityTimer(
      video ? VIDEO_RULE : DISPLAY_RULE,
      browserClock,
      {
        viewable: (at) => send(el, 'impression', 1, at),
        dwell: (ms, at) => send(el, 'dwell', Math.round(ms), at),
      },
      pageVisible(),
    );
    const click = () => send(el, 'click', 1, performance.now());
    el.addEventListener('click', click, { capture: true });
    const creative: Creative = { timer, click };
    const player = video ? (el.tagName === 'VIDEO' ? el : el.querySelector('video')) : null;
    if (player instanceof HTMLVideoElement) {
      const plays = new VideoPlays((kind, value, at) => send(el, kind, value, at));
      const on = (e: Event) => {
        const at = performance.now();
        if (e.type === 'playing') plays.playing(at);
        else if (e.type === 'pause') plays.paused(at);
        else if (e.type === 'ended') plays.ended(at);
        else plays.time(player.currentTime, player.duration, at);
      };
      for (const t of PLAYER_EVENTS) player.addEventListener(t, on);
      creative.plays = plays;
      creative.unlisten = () => {
        for (const t of PLAYER_EVENTS) player.removeEventListener(t, on);
      };
      // Already playing when found (autoplay before the SDK loaded).
      if (!player.paused && !player.ended) plays.playing(performance.now());
    }
    creatives.set(el, creative);
    io.observe(el);
  }

  function untrack(el: Element): void {
    const c = creatives.get(el);
    if (!c) return;
    c.timer.stop();
    c.plays?.flush(performance.now());
    c.unlisten?.();
    el.removeEventListener('click', c.click, { capture: true });
    io.unobserve(el);
    creatives.delete(el);
  }

  function scan(): void {
    if (!started || stopped) return;
    root.querySelectorAll(SELECTOR).forEach(track);
  }

  const mo = new MutationObserver((records) => {
    for (const r of records) {
      r.addedNodes.forEach((n) => {
        if (!(n instanceof Element)) return;
        if (n.matches(SELECTOR)) track(n);
        n.querySelectorAll(SELECTOR).forEach(track);
      });
      r.removedNodes.forEach((n) => {
        if (!(n instanceof Element)) return;
        for (const el of [...creatives.keys()]) if (!el.isConnected && (el === n || n.contains(el))) untrack(el);
      });
    }
  });

  // Hidden page: periods in view end (dwell) and the clocks stop; what is queued leaves by beacon,
  // since the page may never run again.
  const onVisibility = () => {
    const visible = pageVisible();
    for (const c of creatives.values()) c.timer.setPageVisible(visible);
    if (!visible) {
      for (const c of creatives.values()) c.plays?.flush(performance.now());
      sender.flush(true);
    }
  };
  const onPageHide = () => {
    for (const c of creatives.values()) {
      c.timer.setPageVisible(false);
      c.plays?.flush(performance.now());
    }
    sender.flush(true);
  };

  function start(): void {
    if (started || stopped) return;
    started = true;
    document.addEventListener('visibilitychange', onVisibility);
    addEventListener('pagehide', onPageHide);
    mo.observe(root, { childList: true, subtree: true });
    scan();
  }

  function stop(): void {
    if (stopped) return;
    stopped = true;
    mo.disconnect();
    for (const el of [...creatives.keys()]) untrack(el);
    io.disconnect();
    document.removeEventListener('visibilitychange', onVisibility);
    removeEventListener('pagehide', onPageHide);
    sender.flush();
    sender.stop();
  }

  if (!options.requireConsent) start();
  return {
    consent(granted) {
      if (granted) start();
      else if (started) stop();
    },
    flush: () => sender.flush(),
    scan,
    stop,
  };
}
