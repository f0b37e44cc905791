import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { accessSync, constants } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';

/**
 * True under CI: any truthy CI variable (CI=true, CI=1, CI=yes...), not only CI=true; '', '0' and
 * 'false' mean not CI. Every test that needs something from outside asks this one function.
 */
export function underCI(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = (env.CI ?? '').trim().toLowerCase();
  return v !== '' && v !== '0' && v !== 'false' && v !== 'no';
}

/**
 * The one rule for a test that needs a service, a binary or sample data: pass what is missing
 * (undefined/false when nothing is). Locally the test skips with that hint and this returns false;
 * under CI it throws, so a green CI run means the thing was there and the test ran.
 * scripts/check-skips.mjs rejects any other t.skip or skip option.
 */
export function requireOrSkip(t: Pick<TestContext, 'skip'>, missing: string | false | undefined): boolean {
  if (!missing) return true;
  skipOrFail(t, missing);
  return false;
}

/** requireOrSkip for a test that already knows something is missing: `if (!app) return skipOrFail(t, 'services not configured')`. */
export function skipOrFail(t: Pick<TestContext, 'skip'>, missing: string): void {
  if (underCI()) throw new Error(`${missing}: CI must provide it, so this test fails instead of skipping`);
  t.skip(missing);
}

/**
 * The same rule for the `skip` option of test()/describe(): `{ skip: skipOption(!hasX && 'x is not installed') }`.
 * Under CI a missing requirement throws while the file loads, which fails the file.
 */
export function skipOption(missing: string | false | undefined): string | false {
  if (!missing) return false;
  if (underCI()) throw new Error(`${missing}: CI must provide it, so this test file fails instead of skipping`);
  return missing;
}

/**
 * Tests that need a real service read its address from the same variable production uses; a
 * missing one follows requireOrSkip (skip locally with a hint, fail under CI).
 */
export function serviceUrl(t: Pick<TestContext, 'skip'>, variable: 'KAFKA_BROKERS' | 'REDIS_URL' | 'NATS_URL' | 'CLICKHOUSE_URL' | 'BLOB_S3_ENDPOINT'): string | undefined {
  const value = process.env[variable];
  if (value) return value;
  requireOrSkip(t, `${variable} is not set; run deploy/local/up.sh and source deploy/local/env.sh`);
  return undefined;
}

/** A binary a test starts itself (redis-server, nats-server): its path, or undefined when it is nowhere on PATH or in the sbin folders. */
export function findBinary(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const p = `${dir}/${name}`;
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** A name no earlier run used, for topics, groups, keys and subjects. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Poll until `check` returns a value that is not undefined, or fail after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T | undefined> | T | undefined, timeoutMs = 20_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`condition not met within ${timeoutMs} ms${last ? `: ${String(last)}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A TCP port on 127.0.0.1 that nothing listens on right now (for tests that start a server). */
export async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

/** Stop a child process a test started, and wait until it is gone. */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill();
  await once(child, 'exit');
}
