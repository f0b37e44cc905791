import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

// The Svelte app is bundled by Vite, which strips types without checking them: this runs
// svelte-check (strict TypeScript and Svelte's accessibility lints, warnings fail) over dashboard/app.
test('the dashboard app type-checks (svelte-check, no errors, no warnings)', () => {
  const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const bin = createRequire(import.meta.url).resolve('svelte-check/bin/svelte-check');
  const r = spawnSync(process.execPath, [bin, '--tsconfig', './app/tsconfig.json', '--fail-on-warnings', '--output', 'human'], { cwd: dir, encoding: 'utf8' });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /found 0 errors and 0 warnings/);
});
