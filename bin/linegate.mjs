#!/usr/bin/env node
// Runs the compiled CLI in dist/ when it is the build of the sources as they are now (a few ms to
// check), so a command starts without transpiling TypeScript. When dist/ is missing or older than
// the sources (a .ts edited since `npm run build`), it runs the sources through tsx instead and says
// so: slower, never stale.
import { freshness } from './dist.mjs';

const build = freshness();
let cli;
if (build.fresh) {
  cli = await import('../dist/runtime/cli.js');
} else {
  // One log line in the format of the others (pino JSON), since stderr is a log stream.
  const level = process.argv.includes('--log-level') ? process.argv[process.argv.indexOf('--log-level') + 1] : process.env.LINEGATE_LOG_LEVEL;
  const msg = `running the TypeScript sources through tsx (slower start): ${build.why}; \`npm run build\` compiles them`;
  if (!['error', 'fatal', 'silent'].includes(level ?? '')) process.stderr.write(process.stderr.isTTY ? `WARN: ${msg}\n` : `${JSON.stringify({ level: 40, time: Date.now(), pid: process.pid, msg })}\n`);
  const { register } = await import('tsx/esm/api');
  register();
  cli = await import('../runtime/cli.ts');
}
process.exitCode = await cli.main(process.argv);
// The command has closed what it opened. A handle still open after that (a plugin whose init never
// finished, a socket it left behind) must not keep the process alive: exit after a short grace.
setTimeout(() => process.exit(process.exitCode), 2000).unref();
