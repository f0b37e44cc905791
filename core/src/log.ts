import { pino, type Logger } from 'pino';
import { PinoPretty } from 'pino-pretty';

export type { Logger };

/** `auto`: one line per record readable by a person on a terminal, JSON otherwise (files, collectors). */
export type LogFormat = 'auto' | 'json' | 'pretty';

/** One structured logger per process; roles take child loggers (`log.child({ role })`). */
export function createLogger(level: string, bindings: Record<string, unknown> = {}, format: LogFormat = 'json'): Logger {
  const options = {
    level,
    base: { pid: process.pid, ...bindings },
    // API keys never reach a log line, whatever logs a request or its headers.
    redact: { paths: ['req.headers.authorization', 'req.headers["x-api-key"]', 'headers.authorization', 'headers["x-api-key"]'], censor: '[redacted]' },
  };
  const pretty = format === 'pretty' || (format === 'auto' && process.stdout.isTTY === true);
  if (!pretty) return pino(options);
  // In this thread (no transport worker), so a line is written before a crash that follows it.
  return pino(options, PinoPretty({ colorize: process.stdout.isTTY === true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,service', singleLine: true, sync: true }));
}
