import { connect, type NatsConnection, type Status } from '@nats-io/transport-node';
import { AfterglowError } from '../errors.js';
import { assertPublishSubject, assertSubscribeSubject } from './subject.js';
import type { FanOut, Subscription } from './types.js';

/** Connection events (disconnect, reconnect, error, ...) as the NATS client reports them. */
export type NatsStatus = Status;

export interface NatsFanOutOptions {
  /** Shown by the server's monitoring for this connection. */
  name?: string;
  /** Called when a subscriber's handler throws; the connection and other subscribers carry on. */
  onHandlerError?: (err: unknown, subject: string) => void;
  /** How long close() waits for pending messages to drain before it closes anyway (default 5 s). */
  drainTimeoutMs?: number;
}

/**
 * Fan-out across processes over core NATS (at-most-once, no JetStream). The connection
 * reconnects forever: a NATS restart loses the messages published meanwhile, which the port
 * allows, and the client re-subscribes by itself. Callers that keep derived state should
 * resync on a 'reconnect' status (see onStatus).
 */
export class NatsFanOut implements FanOut {
  readonly kind = 'nats' as const;
  private readonly statusListeners = new Set<(status: NatsStatus) => void>();
  private closed = false;
  private errors = 0;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly options: NatsFanOutOptions,
  ) {
    // The status stream ends when the connection closes; it is not expected to fail.
    this.watchStatus().catch(() => {});
  }

  /** Fails if no server answers now; once connected it never gives up reconnecting. */
  static async connect(servers: string[], options: NatsFanOutOptions = {}): Promise<NatsFanOut> {
    try {
      const nc = await connect({
        servers,
        ...(options.name !== undefined && { name: options.name }),
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
      });
      return new NatsFanOut(nc, options);
    } catch (err) {
      throw new AfterglowError('fanout_unavailable', `cannot connect to NATS at ${servers.join(', ')}: ${String(err)}`, { cause: err });
    }
  }

  /** How many times a handler has thrown. */
  get handlerErrors(): number {
    return this.errors;
  }

  /** Calls `listener` on every connection event; returns a function that stops it. */
  onStatus(listener: (status: NatsStatus) => void): () => void {
    this.statusListeners.add(listener);
    return () => this.statusListeners.delete(listener);
  }

  onReconnect(listener: () => void): () => void {
    return this.onStatus((status) => {
      if (status.type === 'reconnect') listener();
    });
  }

  publish(subject: string, data: Uint8Array): void {
    if (this.closed) throw closedError();
    assertPublishSubject(subject);
    // The client holds on to the payload until its next socket write; the copy lets callers
    // reuse their buffer once publish() returns, as with the memory adapter.
    this.nc.publish(subject, data.slice());
  }

  subscribe(subject: string, handler: (data: Uint8Array, subject: string) => void): Subscription {
    if (this.closed) throw closedError();
    assertSubscribeSubject(subject);
    const sub = this.nc.subscribe(subject, {
      callback: (err, msg) => {
        // The server ended the subscription (e.g. a permissions violation); the client also
        // reports it as an 'error' status, which is where onStatus listeners see it.
        if (err) return;
        try {
          handler(msg.data, msg.subject);
        } catch (handlerErr) {
          // The callback runs inside the client's protocol parser: an exception must not escape.
          this.handlerFailed(handlerErr, msg.subject);
        }
      },
    });
    return {
      unsubscribe: () => {
        if (!sub.isClosed() && !this.nc.isClosed()) sub.unsubscribe();
      },
    };
  }

  /** A round trip to the server: what was published has reached it and earlier subscriptions are live. */
  flush(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return this.nc.flush();
  }

  /** Drains (delivers what is in flight, sends what is buffered), bounded so a dead server cannot hang shutdown. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.options.drainTimeoutMs ?? 5_000);
    });
    try {
      await Promise.race([this.nc.drain(), timeout]);
    } catch {
      // Already closing or closed: close() below settles it either way.
    } finally {
      clearTimeout(timer);
    }
    if (!this.nc.isClosed()) await this.nc.close();
  }

  private handlerFailed(err: unknown, subject: string): void {
    this.errors++;
    this.options.onHandlerError?.(err, subject);
  }

  private async watchStatus(): Promise<void> {
    for await (const status of this.nc.status()) {
      for (const listener of this.statusListeners) {
        try {
          listener(status);
        } catch {
          // A faulty listener must not stop status delivery to the others.
        }
      }
    }
  }
}

function closedError(): AfterglowError {
  return new AfterglowError('fanout_closed', 'the fan-out is closed');
}
