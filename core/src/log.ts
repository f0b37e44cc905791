import { pino, type Logger } from 'pino';

export type { Logger };

/** One structured logger per process; roles take child loggers (`log.child({ role })`). */
export function createLogger(level: string, bindings: Record<string, unknown> = {}): Logger {
  return pino({ level, base: { pid: process.pid, ...bindings } });
}
