/**
 * `npm start` kept running: every role in one process on the embedded adapters with the demo
 * posting at its full rate. The in-process log refuses intake once a topic retains
 * BUS_MEMORY_MAX_BACKLOG_BYTES that some consumer group has not committed past, so one group that
 * never commits stops the whole process after a while (at the default 256 MiB, ~5 minutes of demo
 * traffic). Here the bound is small enough that such a group shows up within ~20 s, the run lasts
 * SOAK_MS (default 75 s), and when the traffic stops every group must have caught up.
 * The long run at the default bound, with memory figures, is `npm run bench:soak`.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '@afterglow/core';
import { eventually } from '@afterglow/testkit/services';
import { ensureTestModels, testModelsDir } from '@afterglow/testkit/inference';
import { start, type Running } from 'afterglow';

const SOAK_MS = Number(process.env.SOAK_MS ?? 75_000);
const BACKLOG_BOUND = 16 * 1024 * 1024;

describe('npm start under demo traffic (soak)', () => {
  let running: Running;
  let dataDir: string;

  before(async () => {
    ensureTestModels(['mobilenet_v2']);
    dataDir = mkdtempSync(path.join(tmpdir(), 'afterglow-soak-test-'));
    const config = loadConfig({
      PORT: '0',
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'error',
      AFTERGLOW_DATA_DIR: dataDir,
      AFTERGLOW_MODELS_DIR: testModelsDir(),
      BUS_MEMORY_MAX_BACKLOG_BYTES: String(BACKLOG_BOUND),
      TIE_VERIFY_WORKERS: '1',
      INFERENCE_WORKERS: '1',
      // Scoring featurizes every demo asset (ISNet, OCR: minutes of CPU here) and would still be
      // working through assets.changes when the traffic stops; bench:soak runs with it.
      PREDICT_WORKERS_ENABLED: '0',
    });
    running = await start(config, { roles: ['ingest', 'stream', 'live', 'inference', 'dashboard'], demo: true });
  });
  after(async () => {
    await running?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it(`takes every demo post for ${Math.round(SOAK_MS / 1000)} s, and every consumer group keeps up`, { timeout: SOAK_MS + 120_000 }, async (t) => {
    const generator = running.demo!.generator;
    const backlog = running.bus.backlog!.bind(running.bus);
    const samples: { s: number; sent: number; refused: number; heapMb: number; retainedMb: number }[] = [];
    const t0 = Date.now();
    while (Date.now() - t0 < SOAK_MS) {
      await new Promise((r) => setTimeout(r, 5_000));
      const retained = Math.max(...backlog().map((b) => b.retainedBytes));
      samples.push({
        s: Math.round((Date.now() - t0) / 1000),
        sent: generator.sent,
        refused: generator.refused,
        heapMb: Math.round(process.memoryUsage().heapUsed / 2 ** 20),
        retainedMb: Math.round((retained / 2 ** 20) * 10) / 10,
      });
      // Fail at the first refusal, naming who holds the backlog.
      assert.equal(generator.refused, 0, `intake refused demo posts (HTTP ${generator.lastRefusal}) at ${samples.at(-1)!.s} s; backlog: ${JSON.stringify(backlog())}`);
    }
    for (const s of samples) t.diagnostic(`${s.s}s sent=${s.sent} refused=${s.refused} heap=${s.heapMb}MB largest-topic-backlog=${s.retainedMb}MB`);
    assert.equal(generator.failed, 0, 'no demo post failed outright');
    // The demo posts ~1-3k events/s; far fewer means intake was not really taking them.
    assert.ok(generator.sent > (SOAK_MS / 1000) * 300, `only ${generator.sent} events accepted in ${SOAK_MS} ms`);
    const lastTwo = samples.slice(-2);
    assert.ok(lastTwo.length === 2 && lastTwo[1]!.sent > lastTwo[0]!.sent, 'still taking events at the end');
    // What the dashboard's header shows: the newest event counted live, and the rate.
    const freshness = async () => {
      const res = await fetch(`${running.url}/v1/live/freshness?tenant_id=demo`, { headers: running.demoKeys ? { authorization: `Bearer ${running.demoKeys.dashboard}` } : {} });
      assert.equal(res.status, 200);
      return (await res.json()) as { last_event_at: number | null; events_per_sec: number; as_of: number };
    };
    const live = await freshness();
    t.diagnostic(`freshness while posting: ${JSON.stringify(live)}`);
    assert.ok(live.last_event_at !== null && live.as_of - live.last_event_at < 10_000, `the newest live event is recent: ${JSON.stringify(live)}`);
    assert.ok(live.events_per_sec > 50, `events/s over the last minute: ${live.events_per_sec}`);

    // Once the traffic stops, every group on every topic commits past everything it was given.
    generator.stop();
    await new Promise((r) => setTimeout(r, 3_000));
    const quiet = await freshness();
    assert.ok(quiet.as_of - quiet.last_event_at! >= 2_000, `after the traffic stops the newest event ages: ${JSON.stringify(quiet)}`);
    const behind = await eventually(
      async () => {
        const lagging = backlog().filter((b) => (b.laggiest?.records ?? 0) > 0);
        return lagging.length === 0 ? lagging : undefined;
      },
      60_000,
      500,
    ).catch(() => backlog().filter((b) => (b.laggiest?.records ?? 0) > 0));
    assert.deepEqual(behind, [], 'groups that never caught up (a consumer that does not commit pins the log)');
    for (const b of backlog()) assert.ok(b.retainedBytes < BACKLOG_BOUND / 4, `${b.topic} still retains ${b.retainedBytes} bytes`);
  });
});
