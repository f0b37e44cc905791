#!/usr/bin/env node
// The dependency rules of the architecture, checked on every import of the product packages
// (tests beside the code are not product and may import the testkit):
//   - core imports no other workspace; a role (ingest, sink, live, inference, dashboard) imports only core;
//     cli, the composition root, may import every role;
//   - no product package imports the testkit (@afterglow/testkit, test/kit);
//   - no import cycle between files, nor between folders of one package (a file directly in src/ counts
//     as its own unit: src/index.ts re-exports every folder).
// Static, dynamic and type-only imports all count. Exits 1 listing every violation.
import { readdirSync, readFileSync, statSync, existsSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
/** Package -> its folder. */
const PACKAGES = { core: 'core', ingest: 'ingest', sink: 'stream/sink', live: 'stream/live', inference: 'inference', dashboard: 'dashboard', cli: 'cli' };
const ROLES = new Set(['ingest', 'sink', 'live', 'inference', 'dashboard']);
/** Workspace package name -> package. */
const WORKSPACES = new Map([
  ['@afterglow/core', 'core'],
  ['@afterglow/ingest', 'ingest'],
  ['@afterglow/sink', 'sink'],
  ['@afterglow/live', 'live'],
  ['@afterglow/inference', 'inference'],
  ['@afterglow/dashboard', 'dashboard'],
  ['afterglow', 'cli'],
  ['@afterglow/testkit', 'testkit'],
]);
const TESTKIT_DIR = path.join(root, 'test', 'kit');

const isTest = (file) => /\.test\.ts$/.test(file);

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist' || name.startsWith('.')) continue;
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if ((name.endsWith('.ts') && !name.endsWith('.d.ts')) || name.endsWith('.svelte')) out.push(p);
  }
  return out;
}

function importsOf(file) {
  let text = readFileSync(file, 'utf8');
  if (file.endsWith('.svelte')) text = [...text.matchAll(/<script[^>]*>([\s\S]*?)<\/script>/g)].map((m) => m[1]).join('\n');
  return ts.preProcessFile(text, true, true).importedFiles.map((f) => f.fileName);
}

/** A relative import to the file it loads (sources are written with .js specifiers), or undefined. */
function resolveRelative(from, spec) {
  const base = path.resolve(path.dirname(from), spec);
  const candidates = [base, base.replace(/\.js$/, '.ts'), `${base}.ts`, path.join(base, 'index.ts'), base.replace(/\.js$/, '.svelte')];
  return candidates.find((c) => existsSync(c) && statSync(c).isFile());
}

/** The workspace an import names (`@afterglow/core/live-protocol` -> core), or undefined for a library. */
function workspaceOf(spec) {
  for (const [name, dir] of WORKSPACES) if (spec === name || spec.startsWith(`${name}/`)) return dir;
  return undefined;
}

function packageOfFile(file) {
  const rel = path.relative(root, file).split(path.sep);
  if (rel[0] === 'test' && rel[1] === 'kit') return 'testkit';
  for (const [pkg, dir] of Object.entries(PACKAGES)) if (rel.slice(0, dir.split('/').length).join('/') === dir) return pkg;
  return undefined;
}

const violations = [];
const graph = new Map(); // product file -> product files it imports
const files = Object.values(PACKAGES).flatMap((dir) => walk(path.join(root, dir), []));

for (const file of files) {
  const pkg = packageOfFile(file);
  const product = !isTest(file);
  const rel = path.relative(root, file);
  const edges = [];
  for (const spec of importsOf(file)) {
    let target;
    if (spec.startsWith('.')) {
      const resolved = resolveRelative(file, spec);
      if (!resolved) continue; // a missing file is the compiler's to report
      if (resolved.startsWith(TESTKIT_DIR + path.sep)) target = 'testkit';
      else target = packageOfFile(resolved);
      if (target === pkg && product && !isTest(resolved)) edges.push(resolved);
      else if (target !== pkg && target !== 'testkit') violations.push(`${rel}: reaches into ${path.relative(root, resolved)} by a relative path (import the package)`);
    } else target = workspaceOf(spec);
    if (target === undefined || target === pkg) continue;
    if (target === 'testkit') {
      if (product) violations.push(`${rel}: product code imports the testkit (${spec})`);
      continue;
    }
    if (pkg === 'core') violations.push(`${rel}: core imports ${spec} (core depends on no workspace)`);
    else if (ROLES.has(pkg) && target !== 'core') violations.push(`${rel}: the ${pkg} role imports the ${target} ${ROLES.has(target) ? 'role' : 'package'} (${spec}); roles import only @afterglow/core`);
  }
  if (product) graph.set(file, edges);
}

/** Strongly connected components with more than one node (Tarjan). */
function cycles(nodes, next) {
  let index = 0;
  const idx = new Map();
  const low = new Map();
  const stack = [];
  const on = new Set();
  const out = [];
  const visit = (v) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of next(v)) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
    }
    if (low.get(v) === idx.get(v)) {
      const scc = [];
      let w;
      do {
        w = stack.pop();
        on.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) out.push(scc.sort());
    }
  };
  for (const v of nodes) if (!idx.has(v)) visit(v);
  return out;
}

for (const scc of cycles(graph.keys(), (f) => graph.get(f) ?? [])) {
  violations.push(`import cycle between files: ${scc.map((f) => path.relative(root, f)).join(' <-> ')}`);
}

/** A file's unit for the folder rule: its folder, or the file itself when it lies directly in the package's src/. */
function unitOf(file) {
  const dir = path.dirname(file);
  const pkgDir = path.join(root, PACKAGES[packageOfFile(file)]);
  return dir === path.join(pkgDir, 'src') || dir === pkgDir ? file : dir;
}
const units = new Map();
for (const [file, targets] of graph) {
  const u = unitOf(file);
  if (!units.has(u)) units.set(u, new Set());
  for (const t of targets) if (unitOf(t) !== u) units.get(u).add(unitOf(t));
}
for (const scc of cycles(units.keys(), (u) => units.get(u) ?? [])) {
  if (scc.every((u) => graph.has(u))) continue; // only files directly in src/: reported as a file cycle above
  const why = [];
  for (const u of scc)
    for (const [file, targets] of graph)
      if (unitOf(file) === u) for (const t of targets) if (unitOf(t) !== u && scc.includes(unitOf(t))) why.push(`${path.relative(root, file)} -> ${path.relative(root, t)}`);
  violations.push(`import cycle between folders: ${scc.map((u) => path.relative(root, u)).join(' <-> ')}\n      ${why.join('\n      ')}`);
}

if (violations.length > 0) {
  console.error(`check-deps: ${violations.length} violation(s)`);
  for (const v of violations) console.error(`  ${v}`);
  process.exit(1);
}
console.log(`check-deps: ${graph.size} product files, no role imports another, none imports the testkit, no import cycle`);
