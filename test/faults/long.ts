/**
 * The long fault runs (bench/faults.ts starts this file with tsx): the same scenarios as the CI tests
 * in this folder, bigger, printing what they checked. Exit status 1 when a count is off.
 *   node --conditions=source --import tsx test/faults/long.ts [--kills 20] [--outage-s 60] [--kafka-restarts 3]
 */
import { parseArgs } from 'node:util';
import { kafkaRestart, sinkKills, storeOutage, type FaultReport } from './scenarios.js';

const { values } = parseArgs({
  options: {
    kills: { type: 'string', default: '20' },
    'outage-s': { type: 'string', default: '60' },
    'kafka-restarts': { type: 'string', default: '3' },
    only: { type: 'string' },
  },
});
if (!process.env.KAFKA_BROKERS) {
  console.log('bench:faults skipped: KAFKA_BROKERS not set (deploy/local/up.sh; source deploy/local/env.sh)');
  process.exit(0);
}
const runs: [string, () => Promise<FaultReport>][] = [
  ['kill', () => sinkKills({ kills: Number(values.kills) })],
  ['outage', () => storeOutage({ outageMs: Number(values['outage-s']) * 1000 })],
  ['kafka', () => kafkaRestart({ restarts: Number(values['kafka-restarts']) })],
];
let bad = false;
console.log('scenario                     faults   accepted     stored   distinct     rollup   exact   notes');
for (const [name, run] of runs) {
  if (values.only && !values.only.split(',').includes(name)) continue;
  const r = await run();
  const exact = r.stored === r.accepted && r.distinct === r.accepted && r.rollup === r.accepted;
  if (!exact) bad = true;
  console.log(
    `${r.scenario.padEnd(28)} ${String(r.faults).padStart(6)} ${String(r.accepted).padStart(10)} ${String(r.stored).padStart(10)} ${String(r.distinct).padStart(10)} ${String(r.rollup).padStart(10)}   ${exact ? 'yes' : 'NO '}   ${JSON.stringify(r.notes)}`,
  );
}
process.exit(bad ? 1 : 0);
