import { OverloadedError } from '@afterglow/core';

/**
 * A counting semaphore: at most `n` holders at once, FIFO. With `maxWaiting`, the queue is
 * bounded too: a caller that finds it full gets OverloadedError (503) at once instead of waiting.
 */
export class Limiter {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(
    private readonly n: number,
    private readonly maxWaiting = Infinity,
    private readonly what = 'this work',
  ) {}

  get running(): number {
    return this.active;
  }

  get queued(): number {
    return this.waiting.length;
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.n && this.waiting.length >= this.maxWaiting) {
      throw new OverloadedError(`${this.n} ${this.what} running and ${this.waiting.length} waiting; retry shortly`);
    }
    if (this.active >= this.n) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}
