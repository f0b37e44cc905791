import { request as httpRequest, Agent as HttpAgent } from 'node:http';
import { request as httpsRequest, Agent as HttpsAgent } from 'node:https';
import { Counter, Gauge, WEBHOOK_HEADERS, signWebhook, type Logger, type Registry, type TriggerSettings, type VariantRequest } from '@afterglow/core';
import { EgressDeniedAtConnect, EgressRefusedError, type EgressPolicy } from './egress.js';
import type { DeliveryRow } from './store.js';

/**
 * Signed webhook delivery of variant requests. Each request is POSTed as JSON with
 * `x-afterglow-signature: t=<ms>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` (signed afresh per
 * attempt, so the timestamp is the attempt's). A non-2xx answer, a network error or a timeout is
 * retried with exponential backoff and jitter (half the delay fixed, half random) up to
 * `maxAttempts`. Every attempt is logged (ClickHouse, via `record`). The queue is bounded: jobs
 * waiting for a worker or for their next attempt count against `queue`; past it a job is dropped
 * (and logged as such) rather than held in memory without bound. Retries do not survive a restart.
 *
 * Egress (egress.ts): every attempt goes through the policy. The URL's static checks run first
 * and the socket resolves the host through the policy's `lookup`, so the address connected to is
 * a checked one (DNS rebinding). A refusal is final (`refused`, no retry). Redirects are never
 * followed (a 3xx is a failed attempt). The log keeps a coarse outcome only (`failed` for every
 * network error and timeout, `http_4xx`/`http_5xx`/`http_3xx` for the receiver's answer): a
 * tenant must not tell a closed port from a filtered one or from a DNS failure.
 */

export interface WebhookOptions extends Omit<TriggerSettings['webhook'], 'egress'> {
  log: Logger;
  egress: EgressPolicy;
  record: (rows: DeliveryRow[]) => Promise<void>;
  registry?: Registry;
  random?: () => number;
}

interface Job {
  request: VariantRequest;
  body: string;
  url: string;
  secret: string;
  attempt: number;
}

export class WebhookDispatcher {
  private readonly ready: Job[] = [];
  private waiting = 0;
  private active = 0;
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;
  private idleWaiters: (() => void)[] = [];
  private readonly random: () => number;
  private readonly metrics: { attempts: Counter<'outcome'> };
  private readonly agents: { http: HttpAgent; https: HttpsAgent };

  constructor(private readonly options: WebhookOptions) {
    this.random = options.random ?? Math.random;
    // No keep-alive: every attempt resolves (through the policy) and connects afresh.
    this.agents = { http: new HttpAgent({ keepAlive: false, lookup: options.egress.lookup }), https: new HttpsAgent({ keepAlive: false, lookup: options.egress.lookup }) };
    const registers = options.registry ? [options.registry] : [];
    const self = this;
    new Gauge({
      name: 'afterglow_trigger_webhook_queue',
      help: 'Webhook deliveries queued or waiting for a retry',
      registers,
      collect() {
        this.set(self.size);
      },
    });
    this.metrics = {
      attempts: new Counter({ name: 'afterglow_trigger_webhook_attempts_total', help: 'Webhook delivery attempts by outcome', labelNames: ['outcome'], registers }),
    };
  }

  /** Jobs queued, running or waiting for a retry. */
  get size(): number {
    return this.ready.length + this.waiting + this.active;
  }

  /** Queue a delivery; false (and a `dropped` log row) when the queue is full. */
  enqueue(request: VariantRequest, url: string, secret: string): boolean {
    if (this.stopped || this.size >= this.options.queue) {
      this.metrics.attempts.inc({ outcome: 'dropped' });
      this.options.log.warn({ firing: request.request_id, url }, 'webhook queue full; delivery dropped');
      void this.write([row(request, url, 0, 'dropped', 0, 'queue full')]);
      return false;
    }
    this.ready.push({ request, body: JSON.stringify(request), url, secret, attempt: 0 });
    this.pump();
    return true;
  }

  /** Resolves when nothing is queued, running or waiting (tests). */
  idle(): Promise<void> {
    if (this.size === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    if (this.timers.size + this.ready.length > 0) this.options.log.warn({ abandoned: this.timers.size + this.ready.length }, 'webhook deliveries abandoned at shutdown');
    this.timers.clear();
    this.waiting = 0;
    this.ready.length = 0;
    const deadline = Date.now() + this.options.timeoutMs;
    while (this.active > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    this.agents.http.destroy();
    this.agents.https.destroy();
  }

  private pump(): void {
    while (!this.stopped && this.active < this.options.concurrency && this.ready.length > 0) {
      const job = this.ready.shift()!;
      this.active++;
      void this.attempt(job).finally(() => {
        this.active--;
        this.pump();
        if (this.size === 0) for (const w of this.idleWaiters.splice(0)) w();
      });
    }
  }

  /** The delay before attempt `n + 1` (n >= 1): base x 2^(n-1), capped, half of it jittered. */
  backoff(n: number): number {
    const d = Math.min(this.options.maxBackoffMs, this.options.backoffMs * 2 ** (n - 1));
    return Math.round(d / 2 + (this.random() * d) / 2);
  }

  private async attempt(job: Job): Promise<void> {
    job.attempt++;
    const at = Date.now();
    let status = 0;
    let error: string;
    try {
      status = await this.post(job, at);
      if (status >= 200 && status < 300) {
        this.metrics.attempts.inc({ outcome: 'delivered' });
        await this.write([row(job.request, job.url, job.attempt, 'delivered', status, '')]);
        return;
      }
      error = `http_${Math.floor(status / 100)}xx`;
    } catch (err) {
      if (err instanceof EgressRefusedError || err instanceof EgressDeniedAtConnect || (err as { cause?: unknown }).cause instanceof EgressDeniedAtConnect) {
        this.metrics.attempts.inc({ outcome: 'refused' });
        this.options.log.warn({ firing: job.request.request_id, rule: job.request.rule_id, tenant: job.request.tenant_id }, 'webhook refused by the egress policy');
        await this.write([row(job.request, job.url, job.attempt, 'refused', 0, 'refused_by_policy')]);
        return;
      }
      // One outcome for every network error and timeout (no port/DNS oracle); details stay in debug logs.
      this.options.log.debug({ err, firing: job.request.request_id }, 'webhook attempt failed');
      error = 'failed';
    }
    const last = job.attempt >= this.options.maxAttempts;
    this.metrics.attempts.inc({ outcome: last ? 'gave_up' : 'failed' });
    await this.write([row(job.request, job.url, job.attempt, last ? 'gave_up' : 'failed', status, error)]);
    if (last || this.stopped) {
      if (last) this.options.log.warn({ firing: job.request.request_id, url: job.url, attempts: job.attempt, error }, 'webhook delivery gave up');
      return;
    }
    const delay = this.backoff(job.attempt);
    this.waiting++;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.waiting--;
      if (this.stopped) return;
      this.ready.push(job);
      this.pump();
    }, delay);
    timer.unref();
    this.timers.add(timer);
  }

  /** One POST through the egress policy; resolves with the HTTP status (redirects are not followed). */
  private post(job: Job, at: number): Promise<number> {
    const target = this.options.egress.checkStatic(job.url);
    const { url } = target;
    const body = Buffer.from(job.body);
    const https = url.protocol === 'https:';
    return new Promise<number>((resolve, reject) => {
      const req = (https ? httpsRequest : httpRequest)(
        {
          protocol: url.protocol,
          hostname: target.host,
          port: target.port,
          path: `${url.pathname}${url.search}`,
          method: 'POST',
          agent: https ? this.agents.https : this.agents.http,
          ...(url.username || url.password ? { auth: `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}` } : {}),
          headers: {
            host: url.host,
            'content-type': 'application/json',
            'content-length': body.length,
            'user-agent': 'afterglow-triggers',
            [WEBHOOK_HEADERS.signature]: signWebhook(job.secret, at, job.body),
            [WEBHOOK_HEADERS.timestamp]: String(at),
            [WEBHOOK_HEADERS.delivery]: `${job.request.request_id}.${job.attempt}`,
            [WEBHOOK_HEADERS.event]: 'variant_request',
          },
          signal: AbortSignal.timeout(this.options.timeoutMs),
        },
        (res) => {
          // Only the status matters: the body is not read (a receiver cannot make us buffer it).
          const status = res.statusCode ?? 0;
          res.destroy();
          resolve(status);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  private async write(rows: DeliveryRow[]): Promise<void> {
    try {
      await this.options.record(rows);
    } catch (err) {
      this.options.log.warn({ err }, 'webhook delivery log not written');
    }
  }
}

function row(r: VariantRequest, target: string, attempt: number, status: DeliveryRow['status'], httpStatus: number, error: string): DeliveryRow {
  return { tenant_id: r.tenant_id, firing_id: r.request_id, rule_id: r.rule_id, target, attempt, status, http_status: httpStatus, error, at: Date.now() };
}
