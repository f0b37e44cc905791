/**
 * bench/faults: the long fault runs of issue 8 (20 sink kills, a 60 s ClickHouse outage, 3 Kafka
 * broker restarts), printing kills survived and events checked. The scenarios live with their CI-sized
 * tests in test/faults/ (scenarios.ts); this starts test/faults/long.ts with tsx. `--short` skips:
 * CI already runs the CI-sized versions as tests (test/faults/*.test.ts).
 *   node bench/dist/faults.js [--kills 20] [--outage-s 60] [--kafka-restarts 3] [--only kill,outage,kafka]
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { flag } from './args.js';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
if (flag('short')) {
  console.log('bench:faults: skipped in --short mode (CI runs test/faults/*.test.ts: 5 sink kills, 60 s ClickHouse outage, a Kafka restart)');
  process.exit(0);
}
const r = spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', path.join(root, 'test/faults/long.ts'), ...process.argv.slice(2)], {
  cwd: root,
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
