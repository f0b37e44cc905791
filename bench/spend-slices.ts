/**
 * bench/spend-slices: how long one spend import request's validation holds the event loop. A 1 ms
 * timer chain runs beside SpendImport.run on N valid rows (a dry run: no store); prints the longest
 * gap between its ticks and the run's whole time. Asserts nothing. Usage:
 *   node --conditions=source --import tsx bench/spend-slices.ts [--rows 50000] [--repeat 5]
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Store } from '@afterglow/core';
import { SpendImport } from '../ingest/src/spend.js';
import { opt } from './args.js';

const ROWS = opt('rows', 50_000);
const REPEAT = opt('repeat', 5);
const items = Array.from({ length: ROWS }, (_, i) => ({
  ok: true as const,
  value: { campaign_id: 'c', asset_id: `ad-${i % 40}`, placement: `p${i % 3}`, date: new Date(Date.now() - (i % 20) * 86_400_000).toISOString().slice(0, 10), spend: (i % 97) * 1.25 },
}));
const spend = new SpendImport({ store: {} as Store, maxAgeMs: 365 * 86_400_000 });

for (let r = 0; r < REPEAT; r++) {
  let last = performance.now();
  let longest = 0;
  let ticks = 0;
  let done = false;
  const chain = (async () => {
    while (!done) {
      await sleep(1);
      const now = performance.now();
      longest = Math.max(longest, now - last);
      last = now;
      ticks++;
    }
  })();
  await sleep(5);
  const t0 = performance.now();
  const result = await spend.run(items, { tenantId: 't' } as never, undefined, true);
  const total = performance.now() - t0;
  done = true;
  await chain;
  console.log(`${ROWS} rows (${result.rejected} rejected): validated in ${total.toFixed(0)} ms; longest event-loop gap ${longest.toFixed(1)} ms; ${ticks} timer ticks meanwhile`);
}
