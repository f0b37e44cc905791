import assert from 'node:assert/strict';
import { test } from 'node:test';
import { requireOrSkip, skipOption, skipOrFail, underCI } from './services.js';

/** A stand-in test context that records skips. */
function context(): { skipped: (string | undefined)[]; skip: (msg?: string) => void } {
  const skipped: (string | undefined)[] = [];
  return { skipped, skip: (msg?: string) => void skipped.push(msg) };
}

async function withCI<T>(value: string | undefined, body: () => T): Promise<T> {
  const before = process.env.CI;
  if (value === undefined) delete process.env.CI;
  else process.env.CI = value;
  try {
    return body();
  } finally {
    if (before === undefined) delete process.env.CI;
    else process.env.CI = before;
  }
}

test('underCI: any truthy CI value counts, empty/0/false/no do not', () => {
  for (const v of ['true', '1', 'yes', 'TRUE', 'github']) assert.equal(underCI({ CI: v }), true, v);
  for (const v of [undefined, '', '0', 'false', 'False', 'no']) assert.equal(underCI({ CI: v }), false, String(v));
});

test('requireOrSkip: nothing missing runs; missing skips locally with the hint and fails under CI', async () => {
  const t = context();
  assert.equal(await withCI(undefined, () => requireOrSkip(t, false)), true);
  assert.deepEqual(t.skipped, []);
  assert.equal(await withCI('0', () => requireOrSkip(t, 'redis-server is not installed')), false);
  assert.deepEqual(t.skipped, ['redis-server is not installed']);
  await assert.rejects(withCI('1', async () => requireOrSkip(t, 'redis-server is not installed')), /redis-server is not installed: CI must provide it/);
  await assert.rejects(withCI('true', async () => skipOrFail(t, 'photos')), /photos: CI must provide it/);
  assert.deepEqual(t.skipped, ['redis-server is not installed'], 'under CI nothing was skipped');
});

test('skipOption: false when nothing is missing, the reason locally, a throw under CI', async () => {
  assert.equal(await withCI('true', () => skipOption(false)), false);
  assert.equal(await withCI(undefined, () => skipOption('no chromium')), 'no chromium');
  await assert.rejects(withCI('yes', async () => skipOption('no chromium')), /no chromium: CI must provide it/);
});
