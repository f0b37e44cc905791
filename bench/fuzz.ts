/**
 * The long fuzz run (issue 8): test/fuzz.test.ts with many more payloads per target and a new seed
 * each time (printed, so a failure can be replayed with --seed). `--short` is the CI size.
 *
 *   npm run build && node bench/dist/fuzz.js [--runs 5000] [--seed N] [--short]
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { flag, opt } from './args.js';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
const runs = flag('short') ? 100 : opt('runs', 5000);
const seed = opt('seed', Math.floor(Math.random() * 2 ** 31));
console.log(`fuzz: ${runs} payloads per target (images: a third), seed ${seed}`);
const started = Date.now();
const r = spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', '--test', '--test-timeout=3600000', 'test/fuzz.test.ts'], {
  cwd: root,
  env: { ...process.env, FUZZ_RUNS: String(runs), FUZZ_SEED: String(seed), LOG_LEVEL: process.env.LOG_LEVEL ?? 'error' },
  encoding: 'utf8',
  maxBuffer: 256 * 1024 * 1024,
});
const out = `${r.stdout}${r.stderr}`;
// The figures the test prints (payloads tried, outcomes, heap) and the verdict of each target.
for (const line of out.split('\n')) if (/^# fuzz|^#\s+outcomes|^(not )?ok \d|^# (pass|fail)/.test(line)) console.log(line.replace(/^# /, ''));
console.log(`fuzz: ${((Date.now() - started) / 1000).toFixed(1)} s`);
if (r.status !== 0) {
  console.log(out.split('\n').filter((l) => /Counterexample|Property failed|Error|expected|actual/.test(l)).map((l) => l.slice(0, 2000)).join('\n'));
  console.log(`replay: node bench/dist/fuzz.js --runs ${runs} --seed ${seed}`);
}
process.exit(r.status ?? 1);
