import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { describe, test } from 'node:test';
import { eventually, findBinary, freePort, serviceUrl, skipOption, stopChild } from '@afterglow/testkit/services';
import { runHotStateContract } from '@afterglow/testkit/contracts';
import { RedisHotState } from './redis.js';

describe('RedisHotState', () => {
  runHotStateContract(async (t) => {
    const url = serviceUrl(t, 'REDIS_URL');
    if (!url) return undefined;
    return { a: await RedisHotState.connect(url), b: await RedisHotState.connect(url) };
  });

  test('connecting to a dead Redis fails fast', async () => {
    const started = Date.now();
    await assert.rejects(RedisHotState.connect(`redis://127.0.0.1:${await freePort()}`), { code: 'hot_unavailable' });
    assert.ok(Date.now() - started < 3_000);
  });

  // Needs a Redis of its own to stop and restart; the shared one is left alone.
  const redisServer = findBinary('redis-server');
  test('commands fail fast while Redis is down and work again once it is back', { skip: skipOption(!redisServer && 'redis-server is not installed (apt-get install redis-server)') }, async () => {
    const port = await freePort();
    const url = `redis://127.0.0.1:${port}`;
    let server = startRedis(port);
    try {
      const state = await eventually(() => RedisHotState.connect(url).catch(() => undefined), 10_000, 50);
      await state.set('k', 'v');
      await stopChild(server);

      const started = Date.now();
      await assert.rejects(state.get('k'), { code: 'hot_unavailable' });
      assert.ok(Date.now() - started < 3_000, `took ${Date.now() - started} ms`);

      server = startRedis(port);
      await eventually(() => state.set('k', 'back').then(() => true, () => undefined), 10_000, 100);
      assert.equal(await state.get('k'), 'back');

      await stopChild(server);
      const closing = Date.now();
      await state.close();
      assert.ok(Date.now() - closing < 3_000, 'close() hung on a dead Redis');
    } finally {
      await stopChild(server);
    }
  });
});

function startRedis(port: number): ChildProcess {
  return spawn(findBinary('redis-server') ?? 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
}
