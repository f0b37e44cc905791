/** Typed errors shared by every role. Each carries a stable `code` that is safe to show a client. */
export class AfterglowError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The environment does not describe a valid configuration; fatal at start-up. */
export class ConfigError extends AfterglowError {
  constructor(message: string) {
    super('config_invalid', message);
  }
}

/** The bus refused or timed out a produce; ingest answers 503/429 and the client retries. */
export class BusUnavailableError extends AfterglowError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('bus_unavailable', message, options);
  }
}

/** The bus is over its backlog/in-flight bound: the caller must slow down rather than buffer. */
export class BackpressureError extends AfterglowError {
  constructor(
    message: string,
    readonly retryAfterMs: number,
  ) {
    super('backpressure', message);
  }
}

/** The store (ClickHouse) failed; sinks keep their offsets uncommitted and retry. */
export class StoreError extends AfterglowError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('store_unavailable', message, options);
  }
}

/** A request body or message could not be read at all (as opposed to a single bad event in it). */
export class BadRequestError extends AfterglowError {
  constructor(
    code: string,
    message: string,
    readonly status = 400,
  ) {
    super(code, message);
  }
}

/** A bounded queue of work (image decodes, ...) is full: 503 with Retry-After; the client retries. */
export class OverloadedError extends AfterglowError {
  constructor(message: string) {
    super('overloaded', message);
  }
}
