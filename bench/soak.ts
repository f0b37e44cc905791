/**
 * bench/soak: what `npm start` does, for as long as a person leaves it running. Every role in one
 * process on the embedded defaults (in-process log at its default bound, chDB, memory hot state)
 * with the demo posting at its full rate. Every `--every` seconds it prints the events accepted
 * and refused, the rate, the process's RSS and heap, and the largest topic backlog of the
 * in-process log with the group furthest behind. Exits 1 if any demo post was refused. `--short`
 * is the CI size (1 minute); the default is 12 minutes (the stall this guards against came after
 * ~5½). Models: the test models' folder (built once, shared with the tests).
 *
 *   node bench/dist/soak.js [--short] [--minutes N] [--every S] [--intensity X]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig } from '@afterglow/core';
import { ensureTestModels, testModelsDir } from '@afterglow/testkit/inference';
import { start } from 'afterglow';
import { flag, opt } from './args.js';

const SHORT = flag('short');
const MINUTES = opt('minutes', SHORT ? 1 : 12);
const EVERY_S = opt('every', SHORT ? 15 : 30);

ensureTestModels(['mobilenet_v2']);
const dataDir = mkdtempSync(path.join(tmpdir(), 'afterglow-bench-soak-'));
const config = loadConfig({
  ...process.env,
  PORT: '0',
  LOG_LEVEL: process.env.LOG_LEVEL ?? 'error',
  AFTERGLOW_DATA_DIR: dataDir,
  AFTERGLOW_MODELS_DIR: testModelsDir(),
  // The embedded defaults, whatever this shell has set for the service tests.
  KAFKA_BROKERS: undefined,
  CLICKHOUSE_URL: undefined,
  REDIS_URL: undefined,
  NATS_URL: undefined,
});
const running = await start(config, { roles: ['ingest', 'stream', 'live', 'inference', 'dashboard'], demo: true });
const generator = running.demo!.generator;
const backlog = () => running.bus.backlog?.() ?? [];
const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

console.log(`bench:soak  ${MINUTES} min of demo traffic, all roles in one process, bus bound ${config.bus.kind === 'memory' ? mb(config.bus.maxBacklogBytes) : '-'} MB`);
console.log('  elapsed  accepted  events/s  refused   rss MB  heap MB  largest backlog MB (group furthest behind)');
const t0 = Date.now();
let lastSent = 0;
let lastAt = t0;
let peakRss = 0;
while (Date.now() - t0 < MINUTES * 60_000) {
  await new Promise((r) => setTimeout(r, EVERY_S * 1000));
  const now = Date.now();
  const mem = process.memoryUsage();
  peakRss = Math.max(peakRss, mem.rss);
  const top = backlog().sort((a, b) => b.retainedBytes - a.retainedBytes)[0];
  const rate = ((generator.sent - lastSent) * 1000) / (now - lastAt);
  console.log(
    `  ${String(Math.round((now - t0) / 1000)).padStart(5)} s  ${String(generator.sent).padStart(8)}  ${rate.toFixed(0).padStart(8)}  ${String(generator.refused).padStart(7)}  ${mb(mem.rss).padStart(7)}  ${mb(mem.heapUsed).padStart(7)}  ${top ? `${mb(top.retainedBytes)} ${top.topic} (${top.laggiest?.group ?? 'none'}: ${top.laggiest?.records ?? 0} records)` : '-'}`,
  );
  lastSent = generator.sent;
  lastAt = now;
}
const refused = generator.refused;
console.log(`  accepted ${generator.sent} events in ${MINUTES} min (${((generator.sent * 1000) / (Date.now() - t0)).toFixed(0)}/s), refused ${refused}, failed ${generator.failed}, peak RSS ${mb(peakRss)} MB`);
await running.stop();
rmSync(dataDir, { recursive: true, force: true });
process.exit(refused > 0 ? 1 : 0);
