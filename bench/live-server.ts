/**
 * The server side of bench/live: ingest + live roles in one process, wired by the composition root
 * from the environment (embedded adapters, or KAFKA_BROKERS / REDIS_URL / NATS_URL). Prints
 * `READY <url> [METRICS <url>]` once listening; SIGTERM stops it. Not a benchmark by itself (bench/run.ts skips it).
 */
import { loadConfig } from '@afterglow/core';
import { start, type RoleName } from 'afterglow';

// BENCH_ROLES: another set of roles (bench/edge runs the ingest role alone).
const roles = (process.env.BENCH_ROLES?.split(',') ?? ['ingest', 'live']) as RoleName[];
const running = await start(loadConfig(process.env), { roles, demo: false });
process.stdout.write(`READY ${running.url}${running.metricsUrl ? ` METRICS ${running.metricsUrl}` : ''}\n`);
const stop = () => void running.stop().finally(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// The bench holds our stdin: when it exits (or is killed), so do we.
process.stdin.on('end', stop);
process.stdin.on('error', stop);
process.stdin.resume();
