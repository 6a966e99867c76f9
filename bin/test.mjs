#!/usr/bin/env node
// `npm test`: the type check and the test run side by side, arguments going to vitest. Run one after
// the other, the type check added its whole time (6 s in a fresh clone with TypeScript 7, 23 s with 5.9) to the suite's; beside it, it
// takes CPU the suite leaves while its tests wait on sockets, timers and child processes. Fails when
// either fails, with the other's output kept; a signal (Ctrl-C) reaches both, as they share the
// terminal's process group.
import { spawn } from 'node:child_process';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '..');
const bin = (name) => path.join(ROOT, 'node_modules', '.bin', name);

const run = (cmd, args) =>
  new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: ROOT, stdio: 'inherit' });
    child.on('error', (err) => {
      process.stderr.write(`${path.basename(cmd)}: ${err.message}\n`);
      resolve(1);
    });
    child.on('exit', (code, signal) => resolve(code ?? (signal === null ? 1 : 128)));
  });

const [types, tests] = await Promise.all([
  run(bin('tsc'), ['--noEmit', '-p', '.', '--incremental', '--tsBuildInfoFile', 'node_modules/.cache/linegate/tsc.tsbuildinfo']),
  run(bin('vitest'), ['run', ...process.argv.slice(2)]),
]);
if (types !== 0) process.stderr.write('npm test: the type check failed (tsc --noEmit, its errors above)\n');
process.exit(tests !== 0 ? tests : types);
