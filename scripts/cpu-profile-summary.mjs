#!/usr/bin/env node
// Where a process's CPU time went, from a V8 .cpuprofile (node --cpu-prof): self time by package /
// file and by function, as shares of the sampled time.
//
//   NODE_OPTIONS="--cpu-prof --cpu-prof-dir=/tmp/prof" node bench/dist/ingest.js --short --mode embedded
//   node scripts/cpu-profile-summary.mjs /tmp/prof/CPU.*.cpuprofile [--top N] [--callers REGEX]
//
// --callers REGEX: the call stacks (8 frames up) that spent self time in functions matching REGEX.
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const option = (name) => {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const [, value] = args.splice(i, 2);
  return value;
};
const top = Number(option('top') ?? 25);
const callers = option('callers');
if (args.length === 0) {
  console.error('usage: cpu-profile-summary.mjs FILE.cpuprofile [--top N] [--callers REGEX]');
  process.exit(2);
}

for (const file of args) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const selfTime = new Map();
  profile.samples.forEach((id, i) => selfTime.set(id, (selfTime.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  let total = 0;
  for (const t of selfTime.values()) total += t;
  const parent = new Map();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node);
  const where = (frame) => frame.url.replace(/^file:\/\/.*?\/(node_modules\/)/, '$1').replace(/^file:\/\/\S*?\/((core|ingest|stream|inference|cli|dashboard|bench|test)\/)/, '$1');
  const byFile = new Map();
  const byFunction = new Map();
  const stacks = new Map();
  const pattern = callers ? new RegExp(callers) : undefined;
  for (const node of profile.nodes) {
    const t = selfTime.get(node.id) ?? 0;
    if (t === 0) continue;
    const frame = node.callFrame;
    const url = where(frame);
    const file = (url || frame.functionName).replace(/^node_modules\/((@[^/]+\/)?[^/]+).*/, 'npm:$1');
    byFile.set(file, (byFile.get(file) ?? 0) + t);
    const fn = `${frame.functionName || '(anonymous)'} ${url}:${frame.lineNumber + 1}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + t);
    if (pattern?.test(frame.functionName)) {
      const chain = [];
      for (let p = parent.get(node.id); p && chain.length < 8; p = parent.get(p.id)) chain.push(`${p.callFrame.functionName || '(anonymous)'}@${where(p.callFrame)}:${p.callFrame.lineNumber + 1}`);
      const key = chain.join(' < ');
      stacks.set(key, (stacks.get(key) ?? 0) + t);
    }
  }
  const list = (map, n) =>
    [...map]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, v]) => `${((100 * v) / total).toFixed(1).padStart(5)} %  ${k}`)
      .join('\n');
  console.log(`${file}: ${(total / 1e6).toFixed(1)} s sampled`);
  console.log(`-- self time by package or file\n${list(byFile, top)}`);
  console.log(`-- self time by function\n${list(byFunction, top)}`);
  if (pattern) console.log(`-- stacks into /${callers}/\n${list(stacks, 10)}`);
}
