#!/usr/bin/env node
// Every test able to fail: finds tests that can pass without running. A test that needs a service,
// a binary or sample data goes through the one rule in test/kit/src/services.ts (requireOrSkip,
// skipOrFail, skipOption, serviceUrl; photosOrSkip builds on them): it skips locally and FAILS under
// CI. This script rejects, in every test file and test helper:
//   - t.skip(...), test.skip / describe.skip / it.skip, .todo, and a `skip:` option not given by skipOption(...);
//   - an early `if (...) return` at the top of a test or hook body whose condition is not tied to
//     one of those guards (directly, or through a variable or function that calls one).
// An early return that is not a skip (the test is done) says so with a `not-a-skip: why` comment on
// its line or the line above. Uses the TypeScript parser from node_modules; exits 1 listing findings.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const GUARDS = new Set(['requireOrSkip', 'skipOrFail', 'skipOption', 'serviceUrl', 'photosOrSkip', 'realServicesEnv']);
// The helpers that implement the rule may call t.skip themselves.
const RULE_FILES = new Set(['test/kit/src/services.ts']);
const TEST_CALLS = new Set(['test', 'it', 'describe', 'suite', 'before', 'after', 'beforeEach', 'afterEach']);

function walk(dir, out) {
  let entries;
  try { entries = readdirSync(dir); } catch { return out; }
  for (const name of entries) {
    if (name === 'node_modules' || name === 'dist') continue;
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(path.relative(root, p));
  }
  return out;
}

// Test files beside the code, everything under test/, and the test kits (src/testing).
const files = ['core/src', 'ingest/src', 'stream/sink/src', 'stream/live/src', 'inference/src', 'dashboard/src', 'cli/src', 'test']
  .flatMap((d) => walk(path.join(root, d), []))
  .filter((f) => f.endsWith('.test.ts') || f.startsWith('test/') || f.includes('/testing/') || f.includes('/contract.ts') || f.endsWith('/contract.ts'))
  .sort();
const sources = new Map(files.map((f) => [f, ts.createSourceFile(f, readFileSync(path.join(root, f), 'utf8'), ts.ScriptTarget.Latest, true)]));

const calleeName = (call) => {
  const e = call.expression;
  if (ts.isIdentifier(e)) return e.text;
  if (ts.isPropertyAccessExpression(e)) return e.name.text;
  return undefined;
};
const callsGuard = (node, guards) => {
  let found = false;
  const visit = (n) => {
    if (found) return;
    if (ts.isCallExpression(n) && guards.has(calleeName(n) ?? '')) found = true;
    else ts.forEachChild(n, visit);
  };
  visit(node);
  return found;
};

// Functions (declarations or const arrows, anywhere in the scanned files) that call a guard are
// guards themselves: a value they return may be missing only after the rule ran. Fixpoint.
const guards = new Set(GUARDS);
for (let changed = true; changed; ) {
  changed = false;
  for (const sf of sources.values()) {
    const visit = (n) => {
      let name, body;
      if (ts.isFunctionDeclaration(n) && n.name && n.body) [name, body] = [n.name.text, n.body];
      else if (ts.isVariableDeclaration(n) && ts.isIdentifier(n.name) && n.initializer && (ts.isArrowFunction(n.initializer) || ts.isFunctionExpression(n.initializer)))
        [name, body] = [n.name.text, n.initializer.body];
      if (name && !guards.has(name) && callsGuard(body, guards)) { guards.add(name); changed = true; }
      ts.forEachChild(n, visit);
    };
    visit(sf);
  }
}

const findings = [];
for (const [file, sf] of sources) {
  const text = sf.text;
  const lines = text.split('\n');
  const lineOf = (node) => sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
  const report = (node, msg) => findings.push(`${file}:${lineOf(node) + 1}: ${msg}`);
  const excused = (node) => {
    const l = lineOf(node);
    return /not-a-skip:/.test(lines[l] ?? '') || /not-a-skip:/.test(lines[l - 1] ?? '');
  };
  // Variables whose value comes from a guard (or is set after one, in a hook).
  const guardedVars = new Set();
  const collect = (n) => {
    if (ts.isVariableDeclaration(n) && n.initializer && callsGuard(n.initializer, guards)) {
      const names = [];
      const bind = (b) => (ts.isIdentifier(b) ? names.push(b.text) : b.elements?.forEach((e) => e.name && bind(e.name)));
      bind(n.name);
      names.forEach((x) => guardedVars.add(x));
    }
    if (ts.isBinaryExpression(n) && n.operatorToken.kind === ts.SyntaxKind.EqualsToken && ts.isIdentifier(n.left) && callsGuard(n.right, guards)) guardedVars.add(n.left.text);
    ts.forEachChild(n, collect);
  };
  collect(sf);

  const conditionGuarded = (cond) => {
    if (callsGuard(cond, guards)) return true;
    // Every identifier the condition tests must hold a guarded value.
    const ids = [];
    const visit = (n) => {
      if (ts.isIdentifier(n) && !(ts.isPropertyAccessExpression(n.parent) && n.parent.name === n)) ids.push(n.text);
      ts.forEachChild(n, visit);
    };
    visit(cond);
    return ids.length > 0 && ids.every((id) => guardedVars.has(id));
  };

  const checkBody = (body) => {
    if (!body || !ts.isBlock(body)) return;
    for (const st of body.statements) {
      if (!ts.isIfStatement(st)) continue;
      const then = st.thenStatement;
      const ret = ts.isReturnStatement(then) ? then : ts.isBlock(then) && then.statements.length === 1 && ts.isReturnStatement(then.statements[0]) ? then.statements[0] : undefined;
      if (!ret) continue;
      if (ret.expression && ts.isCallExpression(ret.expression) && guards.has(calleeName(ret.expression) ?? '')) continue;
      if (conditionGuarded(st.expression) || excused(st)) continue;
      report(st, `early return in a test body passes without running: use requireOrSkip/skipOrFail (fails under CI), or mark it "not-a-skip: why"`);
    }
  };

  const visit = (n) => {
    if (ts.isCallExpression(n)) {
      const name = calleeName(n);
      const e = n.expression;
      if (ts.isPropertyAccessExpression(e) && (name === 'skip' || name === 'todo') && !RULE_FILES.has(file))
        report(n, `${e.getText(sf)}(...): skips without the CI rule; use skipOrFail / requireOrSkip / skipOption from @afterglow/testkit/services`);
      const base = ts.isIdentifier(e) ? e.text : undefined;
      if (base && TEST_CALLS.has(base)) {
        for (const arg of n.arguments) {
          if (ts.isObjectLiteralExpression(arg)) {
            for (const p of arg.properties) {
              const key = p.name && ts.isIdentifier(p.name) ? p.name.text : undefined;
              if (key === 'todo') report(p, 'todo option: a test that cannot fail');
              if (key === 'skip' && !(ts.isPropertyAssignment(p) && ts.isCallExpression(p.initializer) && calleeName(p.initializer) === 'skipOption') && !(ts.isPropertyAssignment(p) && ts.isIdentifier(p.initializer) && guardedVars.has(p.initializer.text)))
                report(p, 'skip option not given by skipOption(...): it would skip under CI too');
            }
          }
          if (ts.isArrowFunction(arg) || ts.isFunctionExpression(arg)) checkBody(arg.body);
        }
      }
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
}

if (findings.length) {
  console.error(`check-skips: ${findings.length} test(s) that can pass without running:\n${findings.map((f) => `  ${f}`).join('\n')}`);
  process.exit(1);
}
console.log(`check-skips: ${sources.size} test files and helpers, every skip goes through the CI rule`);
