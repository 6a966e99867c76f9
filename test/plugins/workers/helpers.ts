import { Queue } from 'bullmq';

/** Polls until `cond` holds; fails naming `what` after `ms`. */
export async function waitFor(cond: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A producer for one of the sink's queues, as a station would hold it. */
export const queueOf = (name: string, prefix: string): Queue => new Queue(name, { connection: { host: '127.0.0.1', port: 6379 }, prefix });
