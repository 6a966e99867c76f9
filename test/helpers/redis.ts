import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';

/** The Redis the tests use for real, each under its own prefix: LINEGATE_REDIS_URL, as the station's queue sink reads it, else the local one. */
export const REDIS_URL = process.env.LINEGATE_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** REDIS_URL as the connection options BullMQ and ioredis take. */
export function redisConnection(): { host: string; port: number; username?: string; password?: string; db?: number; tls?: object } {
  const u = new URL(REDIS_URL);
  const db = Number(u.pathname.slice(1));
  return {
    host: u.hostname,
    port: Number(u.port || 6379),
    ...(u.username === '' ? {} : { username: decodeURIComponent(u.username) }),
    ...(u.password === '' ? {} : { password: decodeURIComponent(u.password) }),
    ...(u.pathname.length > 1 && Number.isInteger(db) ? { db } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}

export const uniquePrefix = (): string => `lgtest-${randomUUID().slice(0, 8)}`;

/**
 * Removes every key under `prefix` (a test's, a bench's, the demo's) on the Redis at `url`. A Redis
 * that is away has nothing to clean: no retries, no throw (a fault case may have killed it).
 */
export async function dropPrefix(prefix: string, url: string = REDIS_URL): Promise<void> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  } catch {
    // that Redis is gone: nothing to clean
  } finally {
    redis.disconnect();
  }
}

/** The waiting jobs of one queue, oldest first, with their ids and data. */
export async function jobsOf(prefix: string, queue: string): Promise<{ id: string; name: string; data: unknown; opts: Record<string, unknown> }[]> {
  const q = new Queue(queue, { connection: redisConnection(), prefix });
  try {
    // Waiting jobs in queue order (no worker runs in these tests): the order a worker would take them.
    const jobs = await q.getJobs(['waiting'], 0, -1, true);
    return jobs
      .filter((j) => j !== undefined)
      .map((j) => ({ id: j.id!, name: j.name, data: j.data as unknown, opts: j.opts as Record<string, unknown> }));
  } finally {
    await q.close();
  }
}

/**
 * A TCP relay in front of Redis that a test can cut and restore: Redis "goes
 * away" the way a network or a server does (connections reset, nothing
 * listening), then comes back on the same address.
 */
export class RedisRelay {
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  #port = 0;
  #up = false;

  private constructor() {
    this.#server = net.createServer((client) => {
      const { host, port } = redisConnection();
      const upstream = net.connect(port, host);
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.on('close', () => this.#sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
  }

  static async start(): Promise<RedisRelay> {
    const r = new RedisRelay();
    await r.up();
    return r;
  }

  /** REDIS_URL (its credentials and database) with the relay in place of the server. */
  get url(): string {
    const u = new URL(REDIS_URL);
    u.hostname = '127.0.0.1';
    u.port = String(this.#port);
    return u.toString();
  }

  async up(): Promise<void> {
    if (this.#up) return;
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.#port, '127.0.0.1', () => resolve());
    });
    this.#port = (this.#server.address() as net.AddressInfo).port;
    this.#up = true;
  }

  /** Stops listening and resets every open connection. */
  async down(): Promise<void> {
    if (!this.#up) return;
    this.#up = false;
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const s of this.#sockets) s.destroy();
    await closed;
  }

  close(): Promise<void> {
    return this.down();
  }
}
