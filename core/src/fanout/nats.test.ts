import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { describe, test } from 'node:test';
import { eventually, findBinary, freePort, serviceUrl, skipOption, stopChild, uniqueName } from '@afterglow/testkit/services';
import { runFanOutContract } from '@afterglow/testkit/contracts';
import { NatsFanOut, type NatsStatus } from './nats.js';

describe('NatsFanOut', () => {
  // Publisher and subscriber on separate connections: fan-out across processes is the point.
  runFanOutContract(async (t) => {
    const url = serviceUrl(t, 'NATS_URL');
    if (!url) return undefined;
    const servers = url.split(',');
    return { pub: await NatsFanOut.connect(servers, { name: 'contract-pub' }), sub: await NatsFanOut.connect(servers, { name: 'contract-sub' }) };
  });

  test('a throwing handler is counted and reported', async (t) => {
    const url = serviceUrl(t, 'NATS_URL');
    if (!url) return;
    const failures: string[] = [];
    const fanout = await NatsFanOut.connect(url.split(','), { onHandlerError: (err, subject) => failures.push(`${subject}: ${String(err)}`) });
    try {
      const subject = uniqueName('afterglow-test');
      fanout.subscribe(subject, () => {
        throw new Error('boom');
      });
      await fanout.flush();
      fanout.publish(subject, new Uint8Array([1]));
      await eventually(() => (fanout.handlerErrors === 1 ? true : undefined), 5_000, 5);
      assert.deepEqual(failures, [`${subject}: Error: boom`]);
    } finally {
      await fanout.close();
    }
  });

  test('connecting when no server answers fails fast', async () => {
    const started = Date.now();
    await assert.rejects(NatsFanOut.connect([`nats://127.0.0.1:${await freePort()}`]), { code: 'fanout_unavailable' });
    assert.ok(Date.now() - started < 3_000);
  });

  // Needs a server of its own to stop and restart; the shared one is left alone.
  const natsServer = findBinary('nats-server');
  const needsNatsServer = skipOption(!natsServer && 'nats-server is not installed (apt-get install nats-server)');
  test('after a server restart it reconnects, reports it, and subscriptions deliver again', { skip: needsNatsServer }, async () => {
    const port = await freePort();
    const servers = [`nats://127.0.0.1:${port}`];
    let server = startNats(port);
    try {
      const sub = await eventually(() => NatsFanOut.connect(servers).catch(() => undefined), 10_000, 50);
      const statuses: NatsStatus['type'][] = [];
      sub.onStatus((s) => statuses.push(s.type));
      const got: string[] = [];
      sub.subscribe('restart.>', (data) => got.push(new TextDecoder().decode(data)));
      await sub.flush();

      await stopChild(server);
      await eventually(() => (statuses.includes('disconnect') ? true : undefined), 10_000, 20);
      server = startNats(port);
      await eventually(() => (statuses.includes('reconnect') ? true : undefined), 10_000, 20);

      const pub = await NatsFanOut.connect(servers);
      await sub.flush();
      pub.publish('restart.after', new TextEncoder().encode('back'));
      await pub.flush();
      await eventually(() => (got.includes('back') ? true : undefined), 5_000, 10);
      await pub.close();
      await sub.close();
    } finally {
      await stopChild(server);
    }
  });

  test('close() returns even when the server is gone', { skip: needsNatsServer }, async () => {
    const port = await freePort();
    const server = startNats(port);
    try {
      const fanout = await eventually(() => NatsFanOut.connect([`nats://127.0.0.1:${port}`]).catch(() => undefined), 10_000, 50);
      fanout.subscribe('gone', () => {});
      await stopChild(server);
      fanout.publish('gone', new Uint8Array([1]));
      const started = Date.now();
      await fanout.close();
      assert.ok(Date.now() - started < 8_000, `close took ${Date.now() - started} ms`);
    } finally {
      await stopChild(server);
    }
  });
});

function startNats(port: number): ChildProcess {
  return spawn(findBinary('nats-server') ?? 'nats-server', ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
}
