import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import path from 'node:path';
import { eventually, freePort } from '@afterglow/testkit/services';

/**
 * Services a fault test owns, so it can kill and restart them without touching the shared ones on
 * 9092/6379/4222/8123: a ClickHouse (the chDB HTTP stand-in, deploy/local/chdb-http.ts) as a child
 * process, and Kafka/Redis/NATS through the deploy/local scripts with their own state dir and ports.
 */

export const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');

/** A ClickHouse HTTP endpoint in its own process, on its own data dir; stop/start keep the data. */
export class OwnClickHouse {
  readonly dir = mkdtempSync(path.join(tmpdir(), 'afterglow-ch-'));
  child: ChildProcess | undefined;
  port = 0;

  static async started(): Promise<OwnClickHouse> {
    const ch = new OwnClickHouse();
    await ch.start();
    return ch;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    if (!this.port) this.port = await freePort();
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'deploy/local/chdb-http.ts'), '--path', path.join(this.dir, 'data'), '--port', String(this.port)], {
      cwd: ROOT,
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    this.child = child;
    await eventually(
      async () => {
        if (child.exitCode !== null) throw new Error(`chdb-http exited with ${child.exitCode}`);
        const r = await fetch(`${this.url}/?query=SELECT%201`).catch(() => undefined);
        return r?.ok ? true : undefined;
      },
      60_000,
      100,
    );
  }

  /** SIGTERM (or `signal`) and wait until the port is free. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    await once(child, 'exit');
    this.child = undefined;
  }

  async close(): Promise<void> {
    await this.stop('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Kafka/Redis/NATS from deploy/local on free ports and a private state dir. */
export class OwnService {
  readonly dir = mkdtempSync(path.join(tmpdir(), 'afterglow-svc-'));
  readonly env: Record<string, string> = { AFTERGLOW_LOCAL_DIR: this.dir };

  private constructor(readonly name: 'kafka' | 'redis' | 'nats') {}

  static async create(name: 'kafka' | 'redis' | 'nats'): Promise<OwnService> {
    const s = new OwnService(name);
    if (name === 'kafka') {
      s.env.KAFKA_PORT = String(await freePort());
      s.env.KAFKA_CONTROLLER_PORT = String(await freePort());
      // A small heap: tests share a 2-core machine; the per-partition defaults are plenty.
      s.env.KAFKA_HEAP_OPTS = '-Xms128m -Xmx384m';
      // Reuse the jars the shared instance already resolved (kafka.sh would otherwise run Maven).
      const shared = path.join(process.env.AFTERGLOW_LOCAL_DIR ?? path.join(homedir(), '.cache/afterglow-local'), 'kafka/libs');
      if (existsSync(shared)) {
        mkdirSync(path.join(s.dir, 'kafka/libs'), { recursive: true });
        for (const key of readdirSync(shared)) symlinkSync(path.join(shared, key), path.join(s.dir, 'kafka/libs', key));
      }
    } else if (name === 'redis') s.env.REDIS_PORT = String(await freePort());
    else {
      s.env.NATS_PORT = String(await freePort());
      s.env.NATS_MONITOR_PORT = String(await freePort());
    }
    return s;
  }

  /** The address roles read (KAFKA_BROKERS / REDIS_URL / NATS_URL). */
  get address(): string {
    if (this.name === 'kafka') return `127.0.0.1:${this.env.KAFKA_PORT}`;
    if (this.name === 'redis') return `redis://127.0.0.1:${this.env.REDIS_PORT}`;
    return `nats://127.0.0.1:${this.env.NATS_PORT}`;
  }

  /** Runs the deploy/local script without blocking this process (the intake under test lives here). */
  async run(command: 'start' | 'stop'): Promise<void> {
    const child = spawn('bash', [path.join(ROOT, `deploy/local/${this.name}.sh`), command], {
      env: { ...process.env, ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    if (code !== 0) throw new Error(`${this.name}.sh ${command} failed (${code}):\n${out}`);
  }

  async close(): Promise<void> {
    try {
      await this.run('stop');
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}
