import { pack, unpack } from 'msgpackr';

/**
 * The edge protocol's messages (ingest/EDGE-PROTOCOL.md has the prose and examples). Every
 * message is an object with a `type`; text frames carry JSON, binary frames MessagePack, and the
 * server answers in the encoding of the client's `hello`.
 */

export const EDGE_CLOSE = {
  /** Another connection said hello with this client_id. */
  replaced: 4000,
  /** No application message within the idle timeout. */
  idle: 4001,
  /** The client did not say hello first, or sent something malformed past repair. */
  protocol: 4002,
  /** The send buffer passed its bound (the client does not read). */
  slow: 4003,
  /** A message could not be produced (the bus is unavailable): reconnect and resend from last_seq. */
  retry: 4004,
  unauthorized: 4401,
  /** Another tenant, or a client_id bound to another API key. */
  forbidden: 4403,
} as const;

/** Codes of `error` messages the server sends for the client's identity and sequence numbers. */
export const EDGE_ERROR = {
  /** hello: the client_id is bound to another API key of the tenant (not retryable with this key). */
  clientIdTaken: 'client_id_taken',
  /** events: seq is more than `max_seq_jump` above the client's last acked seq; nothing was produced. */
  seqOutOfWindow: 'seq_out_of_window',
  /** hello: the client_id binding could not be checked (hot state unavailable): reconnect later. */
  hotUnavailable: 'hot_unavailable',
} as const;

/** Client -> server. */
export type ClientMessage =
  | { type: 'hello'; client_id: string; placements?: string[] }
  | { type: 'subscribe'; placement: string; assets?: string[] }
  | { type: 'unsubscribe'; placement: string }
  | { type: 'decide'; placement: string; id?: number | string }
  | { type: 'events'; seq: number; events: unknown[] }
  | { type: 'ping'; t?: number };

export interface Decision {
  type: 'decision';
  placement: string;
  /** The asset to show now. Pushed: the one most probably best; answered to `decide`: one Thompson draw. */
  asset_id: string | null;
  /** Pushed decisions: the share of impressions each asset should get (its probability of being best). */
  shares?: Record<string, number>;
  /** Posterior mean engagement rate per asset. */
  means?: Record<string, number>;
  /** Echo of the `decide` request's id. */
  id?: number | string;
  at: number;
}

/** Server -> client. */
export type ServerMessage =
  | { type: 'welcome'; client_id: string; tenant_id: string; last_seq: number; max_seq_jump: number; heartbeat_ms: number; idle_timeout_ms: number; max_inflight: number }
  | Decision
  | { type: 'ack'; seq: number; accepted: number; rejected: number; duplicate?: true; rejections?: unknown[] }
  | { type: 'error'; seq?: number | null; code: string; message: string; retryable?: boolean }
  | { type: 'pong'; t?: number };

export function encode(message: object, binary: boolean): Buffer | string {
  return binary ? pack(message) : JSON.stringify(message);
}

/** Decodes one frame; throws on bytes that are not an object of the given encoding. */
export function decode(data: Buffer, binary: boolean): Record<string, unknown> {
  const v: unknown = binary ? unpack(data) : JSON.parse(data.toString('utf8'));
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('a message is an object with a type');
  return v as Record<string, unknown>;
}

export const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
