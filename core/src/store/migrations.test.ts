import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Store } from './clickhouse.js';
import { MIGRATIONS, migrate, type Migration } from './migrations.js';

test('every migration has its own version (branches that each added "the next one" collide on merge)', () => {
  const versions = MIGRATIONS.map((m) => m.version);
  assert.deepEqual(versions.filter((v, i) => versions.indexOf(v) !== i), []);
});

test('migrate refuses a list with a version twice before touching the store', async () => {
  const m: Migration = { version: 7, name: 'a', statements: () => [] };
  const untouchable = new Proxy({}, { get: () => assert.fail('the store was used') }) as Store;
  await assert.rejects(migrate(untouchable, [m, { ...m, name: 'b' }]), /two schema migrations are numbered 7/);
});
