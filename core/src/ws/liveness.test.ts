import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import { PingLiveness } from './liveness.js';

class FakeSocket extends EventEmitter {
  pings = 0;
  terminated = false;
  ping() {
    this.pings++;
  }
  terminate() {
    this.terminated = true;
  }
}

test('a socket that answers every ping stays; one that misses a pong is terminated on the next tick', () => {
  const socket = new FakeSocket();
  const liveness = new PingLiveness(socket);
  assert.equal(liveness.tick(), true);
  socket.emit('pong');
  assert.equal(liveness.tick(), true);
  assert.equal(socket.pings, 2);
  assert.equal(socket.terminated, false);
  assert.equal(liveness.tick(), false, 'no pong since the last ping');
  assert.equal(socket.terminated, true);
  assert.equal(socket.pings, 2);
});
