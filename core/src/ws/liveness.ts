/**
 * WebSocket liveness by ping/pong, shared by the live gateway and the edge server: each heartbeat
 * tick pings, and a socket that did not answer the previous ping is terminated.
 */
export interface PingableSocket {
  ping(): void;
  terminate(): void;
  on(event: 'pong', listener: () => void): unknown;
}

export class PingLiveness {
  private alive = true;

  constructor(private readonly socket: PingableSocket) {
    socket.on('pong', () => (this.alive = true));
  }

  /** One heartbeat tick: false when the socket was terminated for missing the last pong. */
  tick(): boolean {
    if (!this.alive) {
      this.socket.terminate();
      return false;
    }
    this.alive = false;
    try {
      this.socket.ping();
    } catch {
      // The socket is closing anyway; its close handler cleans up.
    }
    return true;
  }
}
