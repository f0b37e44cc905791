import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';

/**
 * Tests that need a real service read its address from the same variable production uses.
 * Locally, a missing service skips the test with a hint; under CI (CI=true) it fails, so a
 * green CI run always means the real Kafka/Redis/NATS were exercised.
 */
export function serviceUrl(t: TestContext, variable: 'KAFKA_BROKERS' | 'REDIS_URL' | 'NATS_URL'): string | undefined {
  const value = process.env[variable];
  if (value) return value;
  if (process.env.CI) throw new Error(`${variable} is not set: CI must start the local services (deploy/local/up.sh)`);
  t.skip(`${variable} not set; run deploy/local/up.sh and source deploy/local/env.sh`);
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
