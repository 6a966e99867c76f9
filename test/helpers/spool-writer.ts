import { pino } from 'pino';
import { Spool } from '../../plugins/sink-bullmq/spool.js';

/*
 * A child process for the kill -9 test: appends records to a spool as fast as
 * it can and prints each id once its append resolved (fsync'd). The parent
 * kills it mid-stream and checks that every printed id survived.
 */
const dir = process.argv[2]!;
const spool = await Spool.open(dir, { maxBytes: 64 * 1024 * 1024, segmentBytes: 16 * 1024, log: pino({ level: 'silent' }) });
const pad = 'x'.repeat(200);
for (let i = 0; ; i++) {
  const id = `r-${String(i).padStart(6, '0')}`;
  // Several appends in flight at once, as a busy station makes them: they share fsyncs.
  await Promise.all([0, 1, 2].map((k) => spool.append({ queue: 'results', id: `${id}-${k}`, data: { pad } })));
  process.stdout.write(`${id}\n`);
}
