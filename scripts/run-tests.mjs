#!/usr/bin/env node
// Runs every *.test.ts beside the code (roles) and in test/ with node's test runner through tsx.
// The files are listed here so that arguments can pick them by substring.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, realpathSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const unitOnly = process.argv.includes('--unit');
const only = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const dirs = ['core/src', 'ingest/src', 'ingest/web/src', 'stream/sink/src', 'stream/live/src', 'inference/src', 'dashboard/src', 'cli/src', ...(unitOnly ? [] : ['test'])];

function walk(dir, out) {
  let entries;
  try { entries = readdirSync(dir); } catch { return out; }
  for (const name of entries) {
    if (name === 'node_modules' || name === 'dist') continue;
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.test.ts')) out.push(path.relative(root, p));
  }
  return out;
}

// A full run first checks that no test can pass without running (scripts/check-skips.mjs).
if (only.length === 0) {
  const check = spawnSync(process.execPath, [path.join(root, 'scripts', 'check-skips.mjs')], { cwd: root, stdio: 'inherit' });
  if (check.status !== 0) process.exit(check.status ?? 1);
}

let files = dirs.flatMap((d) => walk(path.join(root, d), [])).sort();
if (only.length) files = files.filter((f) => only.some((o) => f.includes(o)));
if (files.length === 0) { console.error('no test files found'); process.exit(1); }
// --conditions=source: workspace packages resolve to their TypeScript sources, so tests never run a stale dist.
const args = ['--conditions=source', '--import', 'tsx', '--test', '--test-concurrency=1', '--test-timeout=300000', ...files];
// The project's own Node (the `node` dev dependency) even when this script was started with the
// system's: `npm test` already runs on it, a direct `node scripts/run-tests.mjs` may not.
const bundled = path.join(root, 'node_modules', '.bin', 'node');
const node = existsSync(bundled) ? realpathSync(bundled) : process.execPath;
// The spec reporter for people, TAP to a file for the one-line summary at the end (CI reads it).
const tap = path.join(tmpdir(), `afterglow-tests-${process.pid}.tap`);
const reporters = ['--test-reporter=spec', '--test-reporter-destination=stdout', '--test-reporter=tap', `--test-reporter-destination=${tap}`];
const r = spawnSync(node, [...reporters, ...args], { cwd: root, stdio: 'inherit' });
try {
  const text = readFileSync(tap, 'utf8');
  const count = (name) => Number([...text.matchAll(new RegExp(`^# ${name} (\\d+)$`, 'gm'))].at(-1)?.[1] ?? 0);
  console.log(`tests: ${count('pass')} passed, ${count('fail') + count('cancelled')} failed, ${count('skipped')} skipped`);
  rmSync(tap, { force: true });
} catch {
  // No TAP file: the runner died before reporting; its exit status says so.
}
process.exit(r.status ?? 1);
