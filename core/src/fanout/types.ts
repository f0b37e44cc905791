/**
 * The fan-out port: fire-and-forget publish/subscribe of small live deltas to whoever listens
 * now (dashboard gateways, edge gateways). Adapters: NATS (production, across processes) and an
 * in-process bus (embedded). Subjects follow NATS rules: '.'-separated tokens, '*' matches one
 * token, '>' matches one or more trailing tokens. Delivery is at-most-once: consumers resync
 * from hot state / the store when they detect a gap.
 */
export interface FanOut {
  readonly kind: 'nats' | 'memory';
  publish(subject: string, data: Uint8Array): void;
  subscribe(subject: string, handler: (data: Uint8Array, subject: string) => void): Subscription;
  /** Resolves once everything published so far has left this process. */
  flush(): Promise<void>;
  /**
   * Calls `listener` after the connection came back (subscriptions restored); whatever was published
   * meanwhile is lost, so listeners resync from hot state. Returns a function that stops it. Adapters
   * that cannot disconnect (in-process) never call it.
   */
  onReconnect(listener: () => void): () => void;
  close(): Promise<void>;
}

export interface Subscription {
  unsubscribe(): void;
}
