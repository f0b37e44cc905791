import { AfterglowError } from '../errors.js';
import { assertPublishSubject, assertSubscribeSubject, hasWildcard } from './subject.js';
import type { FanOut, Subscription } from './types.js';

export interface FanOutOptions {
  /** Called when a subscriber's handler throws; the other subscribers are unaffected. */
  onHandlerError?: (err: unknown, subject: string) => void;
}

type Handler = (data: Uint8Array, subject: string) => void;

interface Sub {
  readonly handler: Handler;
  active: boolean;
}

interface Pending {
  readonly subject: string;
  readonly data: Uint8Array;
  readonly subs: Sub[];
}

/**
 * In-process fan-out for the embedded deployment, with NATS subject semantics. Delivery is
 * asynchronous (a handler never runs inside publish()) and batched per setImmediate turn, so a
 * handler that publishes cannot starve I/O the way a microtask loop could. Messages go through
 * one FIFO queue, which keeps every subscriber's order. Exact subscriptions are found with one
 * Map lookup; wildcard ones through a token trie, so publish cost does not grow with the number
 * of unrelated subscriptions.
 */
export class MemoryFanOut implements FanOut {
  readonly kind = 'memory' as const;
  private readonly exact = new Map<string, Set<Sub>>();
  private readonly wildcards = new TrieNode();
  private queue: Pending[] = [];
  private scheduled = false;
  private published = 0;
  private delivered = 0;
  private readonly flushWaiters: { target: number; resolve: () => void }[] = [];
  private closed = false;
  private errors = 0;

  constructor(private readonly options: FanOutOptions = {}) {}

  /** How many times a handler has thrown. */
  get handlerErrors(): number {
    return this.errors;
  }

  publish(subject: string, data: Uint8Array): void {
    if (this.closed) throw closedError();
    assertPublishSubject(subject);
    const subs = [...(this.exact.get(subject) ?? [])];
    this.wildcards.collect(subject.split('.'), 0, subs);
    if (subs.length === 0) return;
    this.published++;
    // Copied like a NATS publish, so a publisher may reuse its buffer once publish() returns.
    this.queue.push({ subject, data: data.slice(), subs });
    this.schedule();
  }

  subscribe(subject: string, handler: Handler): Subscription {
    if (this.closed) throw closedError();
    assertSubscribeSubject(subject);
    const sub: Sub = { handler, active: true };
    if (hasWildcard(subject)) {
      const tokens = subject.split('.');
      this.wildcards.add(tokens, sub);
      return { unsubscribe: () => this.drop(sub, () => this.wildcards.remove(tokens, 0, sub)) };
    }
    let set = this.exact.get(subject);
    if (!set) this.exact.set(subject, (set = new Set()));
    set.add(sub);
    return {
      unsubscribe: () =>
        this.drop(sub, () => {
          set.delete(sub);
          if (set.size === 0) this.exact.delete(subject);
        }),
    };
  }

  /** Resolves once every message published so far has been handed to its subscribers. */
  flush(): Promise<void> {
    if (this.delivered === this.published) return Promise.resolve();
    return new Promise((resolve) => this.flushWaiters.push({ target: this.published, resolve }));
  }

  /** In-process: never disconnects, so never reconnects. */
  onReconnect(_listener: () => void): () => void {
    return () => undefined;
  }

  /** Refuses new publishes, delivers what is queued (like a NATS drain), then drops every subscription. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.flush();
    this.exact.clear();
    this.wildcards.clear();
  }

  private drop(sub: Sub, unindex: () => void): void {
    if (!sub.active) return;
    // Messages already queued for it are skipped at delivery: unsubscribe stops delivery at once.
    sub.active = false;
    unindex();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.deliver());
  }

  private deliver(): void {
    this.scheduled = false;
    // Only what is queued now; messages that handlers publish go to the next turn.
    const batch = this.queue;
    this.queue = [];
    for (const { subject, data, subs } of batch) {
      for (const sub of subs) {
        if (!sub.active) continue;
        try {
          sub.handler(data, subject);
        } catch (err) {
          this.errors++;
          this.options.onHandlerError?.(err, subject);
        }
      }
    }
    this.delivered += batch.length;
    while (this.flushWaiters.length > 0 && this.flushWaiters[0]!.target <= this.delivered) {
      this.flushWaiters.shift()!.resolve();
    }
    if (this.queue.length > 0) this.schedule();
  }
}

function closedError(): AfterglowError {
  return new AfterglowError('fanout_closed', 'the fan-out is closed');
}

/**
 * Wildcard subscriptions by token. `subs` hold patterns that end at this node; `tail` holds
 * patterns whose next (and last) token is '>', which match any one or more remaining tokens.
 */
class TrieNode {
  readonly children = new Map<string, TrieNode>();
  readonly subs = new Set<Sub>();
  readonly tail = new Set<Sub>();

  add(tokens: string[], sub: Sub): void {
    let node: TrieNode = this;
    for (let i = 0; i < tokens.length; i++) {
      const token = tokens[i]!;
      if (token === '>' && i === tokens.length - 1) {
        node.tail.add(sub);
        return;
      }
      let child = node.children.get(token);
      if (!child) node.children.set(token, (child = new TrieNode()));
      node = child;
    }
    node.subs.add(sub);
  }

  /** Removes `sub` and prunes nodes left empty, so churn of subscriptions does not leak nodes. */
  remove(tokens: string[], i: number, sub: Sub): void {
    const token = tokens[i]!;
    if (i === tokens.length - 1 && token === '>') {
      this.tail.delete(sub);
      return;
    }
    const child = this.children.get(token);
    if (!child) return;
    if (i === tokens.length - 1) child.subs.delete(sub);
    else child.remove(tokens, i + 1, sub);
    if (child.isEmpty()) this.children.delete(token);
  }

  collect(tokens: string[], i: number, out: Sub[]): void {
    if (i === tokens.length) {
      for (const sub of this.subs) out.push(sub);
      return;
    }
    for (const sub of this.tail) out.push(sub);
    const literal = this.children.get(tokens[i]!);
    if (literal) literal.collect(tokens, i + 1, out);
    const star = this.children.get('*');
    if (star) star.collect(tokens, i + 1, out);
  }

  clear(): void {
    this.children.clear();
    this.subs.clear();
    this.tail.clear();
  }

  private isEmpty(): boolean {
    return this.children.size === 0 && this.subs.size === 0 && this.tail.size === 0;
  }
}
