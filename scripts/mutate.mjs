#!/usr/bin/env node
// Mutation testing, small and dependency-free: flips one operator at a time in chosen modules
// (comparisons, equality, logic, arithmetic), runs the tests beside the module, and counts the
// mutants the tests kill. A surviving mutant is a change of behaviour no test noticed: kill it
// with a test, or explain it in EXPLAINED below (an equivalent mutant, or a gap said as such).
//
//   node scripts/mutate.mjs [--short] [--strict] [--module SUBSTRING] [--max N] [--list]
//
// --short (CI): every 4th mutant site of each module or sparser, spread over the file, at most 12 per module.
// --strict: exit 1 when an unexplained mutant survives. --list prints the sites without running anything.
// Files are mutated in place and restored after each run (and on Ctrl-C); run it on a clean tree.
// An explanation that says NOT equivalent marks a known gap in the tests, kept visible here.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const args = process.argv.slice(2);
const short = args.includes('--short');
const onlyModule = args.includes('--module') ? args[args.indexOf('--module') + 1] : undefined;
// Short mode: at most this many mutants per module (the sink's tests start chDB: ~10 s a run).
const max = args.includes('--max') ? Number(args[args.indexOf('--max') + 1]) : short ? 12 : Infinity;
const listOnly = args.includes('--list');

/** Each module with the tests beside it that must kill its mutants. */
const MODULES = [
  { file: 'core/src/events.ts', tests: ['core/src/events.test.ts', 'core/src/dedup.test.ts'] },
  { file: 'stream/live/src/live/windows.ts', tests: ['stream/live/src/live/windows.test.ts', 'stream/live/src/live/replica.test.ts'] },
  { file: 'stream/sink/src/sink.ts', tests: ['stream/sink/src/sink-retry.test.ts', 'stream/sink/src/sink.test.ts'] },
  { file: 'inference/src/tie/propagate.ts', tests: ['inference/src/tie/propagate.test.ts'] },
];

/**
 * Surviving mutants that cannot change behaviour, keyed `file|source line (trimmed)|from->to`, with why.
 * A key that no longer matches anything is reported, so explanations do not outlive their code.
 */
const EXPLAINED = {
  'core/src/events.ts|const memo = busReads.get(value) ?? busReadsBefore.get(value);|??->&&#1':
    'equivalent but for speed: a memo missed is a record decoded again, to the same read (each reader gets a copy either way)',
  'core/src/events.ts|if (++busReadsCount > BUS_READS_KEPT) {|>->>=#1':
    'equivalent but for memory: the decode memo turns over one record earlier',
  'core/src/events.ts|if (++busReadsCount > BUS_READS_KEPT) {|++->--#1':
    'NOT equivalent, memory only: the decode memo would keep every record its Buffer outlives (bounded by the log, not by BUS_READS_KEPT); what a reader gets is the same',
  'inference/src/tie/propagate.ts|const ranked = a.candidates.map((c, i) => ({ c, i })).sort((x, y) => y.c.score - x.c.score || x.i - y.i);|-->+#2':
    "Array.prototype.sort is stable: for equal scores, x.i + y.i (> 0: 'keep x after y') orders them as x.i - y.i does; the tie-break only documents it",
  'stream/sink/src/sink.ts|this.timer = setInterval(() => void this.flushAged().catch(() => undefined), Math.max(20, Math.min(250, this.options.batchMaxMs / 4)));|/->*#1':
    'NOT equivalent, a latency only: the timer ticks every 250 ms instead of batchMaxMs / 4, so a due buffer waits up to 250 ms longer; when a buffer is due is tested through flushAged() on an injected clock',
  'stream/sink/src/sink.ts|return p.rows.length + p.dlq.length > 0 && now - p.firstAt >= this.options.batchMaxMs;|>->>=#1':
    'equivalent: an aged empty buffer (no rows, no dead letters, hence no offsets) is flushed as nothing: flushPending returns at once',
  'stream/sink/src/sink.ts|if (batch.rows.length === 0 && batch.dlq.length === 0 && batch.offsets.size === 0) return;|&&->||#2':
    '(no rows and no DLQ) || no offsets: a buffer with rows or DLQ records always has their offsets (onBatch sets them together), so the condition is the same',
  'stream/sink/src/sink.ts|if (batch.dlq.length > 0) await this.dlqProducer!.send(TOPICS.eventsDlq, batch.dlq);|>->>=#1':
    'sending an empty DLQ batch: the producers write nothing for zero records; the guard only saves the call',
  'stream/sink/src/sink.ts|if (fresh.length > 0) {|>->>=#1':
    'an insert of zero rows: events_raw gets nothing either way; the guard only saves the round trip',
  'stream/sink/src/sink.ts|if (batch.records.length === 0 || this.stopping) return;|||->&&#1':
    'NOT equivalent, untested: records delivered while stopping are not buffered (they go to the next owner); no test stops a sink mid-delivery',
  'stream/live/src/live/windows.ts|if (current > b) return -1;|>->>=#1':
    'equivalent: current === b returned on the line before, so >= and > agree on every bucket that reaches it',
  'stream/live/src/live/windows.ts|if (all) for (let slot = 0; slot < slots; slot++) if (tier.bucket[slot]! >= 0) out[`${name}${slot}`] = tier.row(slot);|<-><=#1':
    'equivalent: slot = slots reads past the ring (undefined), and undefined >= 0 is false, so nothing more is listed',
  'stream/live/src/live/windows.ts|for (const tier of this.tiers) for (let slot = 0; slot < tier.spec.slots; slot++) if (tier.bucket[slot]! >= 0) tier.mark(slot, bit);|<-><=#1':
    'equivalent: slot = slots reads past the ring (undefined), and undefined >= 0 is false, so nothing more is marked',
  'stream/live/src/live/windows.ts|for (let slot = 0; slot < from.spec.slots; slot++) {|<-><=#1':
    'equivalent: slot = slots reads bucket undefined; claim() and the removal test then give slot NaN, whose typed-array writes are ignored and whose row takeRows() skips (bucket[NaN] >= 0 is false)',
  'stream/live/src/live/windows.ts|if (sign > 0) s = to.claim(b);|>->>=#1':
    'equivalent: sign is 1 or -1 (its type), never 0',
  'stream/live/src/live/windows.ts|for (let v = 0; v < VALUE_KINDS.length; v++) out[KIND_COUNT + v]! += f * tier.values[ov + v]!;|<-><=#1':
    'equivalent: every caller (windowSums, metricsView) passes an array of COLUMNS entries; the extra out[COLUMNS] write is ignored by the Float64Array',
  'stream/live/src/live/windows.ts|for (const b of this.tiers[1].bucket) if (b >= 0 && (oldest === undefined || b < oldest)) oldest = b;|<-><=#1':
    'equivalent: two slots never hold the same minute (minute m lives in slot m % slots only), so b === oldest cannot occur',
  'stream/live/src/live/windows.ts|for (const tier of this.tiers) for (const b of tier.bucket) if (b >= 0) newest = Math.max(newest, b * tier.spec.resMs);|>=->>#1':
    'equivalent: a bucket numbered 0 starts at 0 ms, which is also what newestAt() starts from, so skipping it changes no answer',
  'stream/live/src/live/windows.ts|if (!all && tier.bucket[slot]! >= 0) out[`${name}${slot}`] = tier.row(slot);|&&->||#1':
    'equivalent: a slot is listed only once claimed (its bucket >= 0), and with all the same rows were written by the loop above',
  'stream/sink/src/sink.ts|if (batch.rows.length === 0 && batch.dlq.length === 0 && batch.offsets.size === 0) return;|===->!==#1':
    'equivalent: the early return only saves work; without it an empty buffer is written as nothing (no insert, no DLQ send, an empty commit)',
  'stream/sink/src/sink.ts|if (batch.rows.length === 0 && batch.dlq.length === 0 && batch.offsets.size === 0) return;|===->!==#2':
    'equivalent: the early return only saves work; without it an empty buffer is written as nothing (no insert, no DLQ send, an empty commit)',
  'stream/sink/src/sink.ts|if (batch.rows.length === 0 && batch.dlq.length === 0 && batch.offsets.size === 0) return;|===->!==#3':
    'equivalent: the early return only saves work; without it an empty buffer is written as nothing (no insert, no DLQ send, an empty commit)',
  'stream/sink/src/sink.ts|await this.events.insert(fresh, this.options.insertSettings ?? SINGLE_NODE_SINK_INSERT_SETTINGS);|??->&&#1':
    "NOT equivalent, untested: the insert's dedup settings (single-node or the cluster's); the sink tests on chDB store the same rows with or without them",
  'stream/sink/src/sink.ts|delay = Math.min(delay * 2, 5_000);|*->/#1':
    'NOT equivalent, untested: the backoff between retries shrinks instead of doubling (a timing, which a test could only see with a clock assert)',
};

const SWAPS = new Map([
  [ts.SyntaxKind.LessThanToken, ['<', '<=']],
  [ts.SyntaxKind.LessThanEqualsToken, ['<=', '<']],
  [ts.SyntaxKind.GreaterThanToken, ['>', '>=']],
  [ts.SyntaxKind.GreaterThanEqualsToken, ['>=', '>']],
  [ts.SyntaxKind.EqualsEqualsEqualsToken, ['===', '!==']],
  [ts.SyntaxKind.ExclamationEqualsEqualsToken, ['!==', '===']],
  [ts.SyntaxKind.AmpersandAmpersandToken, ['&&', '||']],
  [ts.SyntaxKind.BarBarToken, ['||', '&&']],
  [ts.SyntaxKind.QuestionQuestionToken, ['??', '&&']],
  [ts.SyntaxKind.PlusToken, ['+', '-']],
  [ts.SyntaxKind.MinusToken, ['-', '+']],
  [ts.SyntaxKind.AsteriskToken, ['*', '/']],
  [ts.SyntaxKind.SlashToken, ['/', '*']],
  [ts.SyntaxKind.PercentToken, ['%', '*']],
  [ts.SyntaxKind.PlusEqualsToken, ['+=', '-=']],
  [ts.SyntaxKind.MinusEqualsToken, ['-=', '+=']],
  [ts.SyntaxKind.PlusPlusToken, ['++', '--']],
  [ts.SyntaxKind.MinusMinusToken, ['--', '++']],
]);

/** Operator sites in code (binary and unary expressions only: never in types, strings, comments or regexes). */
function sites(file, text) {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const out = [];
  const visit = (n) => {
    let op;
    if (ts.isBinaryExpression(n)) op = n.operatorToken;
    if ((ts.isPrefixUnaryExpression(n) || ts.isPostfixUnaryExpression(n)) && (n.operator === ts.SyntaxKind.PlusPlusToken || n.operator === ts.SyntaxKind.MinusMinusToken)) {
      // The operator's position: before the operand (prefix) or after it (postfix).
      const start = ts.isPrefixUnaryExpression(n) ? n.getStart(sf) : n.operand.getEnd();
      out.push({ start, kind: n.operator });
    }
    if (op && SWAPS.has(op.kind)) {
      // Leave string building alone: `+` with a string literal or template on either side.
      const strLike = (e) => ts.isStringLiteral(e) || ts.isTemplateExpression(e) || ts.isNoSubstitutionTemplateLiteral(e);
      if (!(op.kind === ts.SyntaxKind.PlusToken && (strLike(n.left) || strLike(n.right)))) out.push({ start: op.getStart(sf), kind: op.kind });
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return out.map((s) => {
    const [from, to] = SWAPS.get(s.kind);
    const line = text.slice(0, s.start).split('\n').length;
    const lineText = text.split('\n')[line - 1].trim();
    // Which `from` of its line this is (1-based), so two operators on one line have distinct keys.
    const lineStart = text.lastIndexOf('\n', s.start - 1) + 1;
    const nth = text.slice(lineStart, s.start).split(from).length;
    return { ...s, from, to, line, lineText, nth };
  });
}

const bundled = path.join(root, 'node_modules', '.bin', 'node');
const node = existsSync(bundled) ? realpathSync(bundled) : process.execPath;
/**
 * Runs the tests; true when they pass. A mutant that loops forever is killed by the timeout (counted
 * as killed). The runner starts a process per test file: coreutils' timeout signals its whole process
 * group, so a looping test file dies with the runner instead of spinning on as an orphan.
 */
function runTests(tests, timeoutMs = 300_000) {
  const args = ['--conditions=source', '--import', 'tsx', '--test', '--test-concurrency=1', '--test-reporter=dot', ...tests];
  const r = spawnSync('timeout', ['--signal=KILL', `${Math.ceil(timeoutMs / 1000)}s`, node, ...args], {
    cwd: root,
    encoding: 'utf8',
    // A backstop only: timeout(1) above ends the group first.
    timeout: timeoutMs + 30_000,
    killSignal: 'SIGKILL',
    env: { ...process.env, AFTERGLOW_MUTATION: '1' },
  });
  return r.status === 0 && !r.error;
}

let restore;
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { restore?.(); process.exit(130); });

const survivors = [];
const explainedSeen = new Set();
let total = 0;
let killed = 0;
for (const m of MODULES) {
  if (onlyModule && !m.file.includes(onlyModule)) continue;
  const tests = m.tests.filter((t) => existsSync(path.join(root, t)));
  const abs = path.join(root, m.file);
  const original = readFileSync(abs, 'utf8');
  restore = () => writeFileSync(abs, original);
  if (listOnly) {
    const all = sites(m.file, original);
    console.log(`${m.file}: ${all.length} sites${all.map((x) => `\n  ${x.line}: ${x.from} -> ${x.to}   ${x.lineText.slice(0, 100)}`).join('')}`);
    continue;
  }
  const baselineStarted = Date.now();
  if (!runTests(tests)) {
    console.error(`mutate: the tests of ${m.file} fail before any mutation (${tests.join(' ')}); fix them first`);
    process.exit(2);
  }
  // A mutant that turns a loop infinite would otherwise hang: 3x the clean run, at least 15 s.
  const timeoutMs = Math.max(15_000, 3 * (Date.now() - baselineStarted));
  let list = sites(m.file, original);
  // Spread over the whole file: every step-th site, step at least 4 and large enough for the cap.
  const step = short ? Math.max(4, Math.ceil(list.length / max)) : list.length > max ? Math.ceil(list.length / max) : 1;
  list = list.filter((_, i) => i % step === 0).slice(0, max);
  let moduleKilled = 0;
  const t0 = Date.now();
  for (const s of list) {
    const mutated = original.slice(0, s.start) + s.to + original.slice(s.start + s.from.length);
    writeFileSync(abs, mutated);
    let dead;
    try {
      dead = !runTests(tests, timeoutMs);
    } finally {
      writeFileSync(abs, original);
    }
    total++;
    if (dead) { killed++; moduleKilled++; continue; }
    const key = `${m.file}|${s.lineText}|${s.from}->${s.to}#${s.nth}`;
    if (EXPLAINED[key]) { explainedSeen.add(key); killed++; moduleKilled++; continue; }
    survivors.push(`${m.file}:${s.line}: ${s.from} -> ${s.to} (#${s.nth} on the line) survived   ${s.lineText.slice(0, 140)}`);
  }
  restore = undefined;
  console.log(`mutate: ${m.file}: ${moduleKilled}/${list.length} killed or explained (${((Date.now() - t0) / 1000).toFixed(0)} s; tests ${tests.join(', ')})`);
}

for (const s of survivors) console.log(`  survivor ${s}`);
const stale = Object.keys(EXPLAINED).filter((k) => !explainedSeen.has(k) && (!onlyModule || k.includes(onlyModule)));
if (!short) for (const k of stale) console.log(`  explanation matched no surviving mutant (stale?): ${k}`);
const score = total ? (100 * killed) / total : 100;
console.log(`mutation score: ${killed}/${total} = ${score.toFixed(1)}%${short ? ' (short: a spread sample of the sites)' : ''}, ${survivors.length} unexplained survivor(s)`);
// --strict fails the run on an unexplained survivor. CI runs with it: every site of the four modules is
// killed or explained, so a survivor in the sample is new (changed code or a weakened test) and must be acted on.
process.exit(args.includes('--strict') && survivors.length > 0 ? 1 : 0);
