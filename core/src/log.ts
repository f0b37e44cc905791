import { pino, type Logger } from 'pino';

export type { Logger };

/** One structured logger per process; roles take child loggers (`log.child({ role })`). */
export function createLogger(level: string, bindings: Record<string, unknown> = {}): Logger {
  return pino({
    level,
    base: { pid: process.pid, ...bindings },
    // API keys never reach a log line, whatever logs a request or its headers (issue 8).
    redact: { paths: ['req.headers.authorization', 'req.headers["x-api-key"]', 'headers.authorization', 'headers["x-api-key"]'], censor: '[redacted]' },
  });
}
