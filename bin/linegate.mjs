#!/usr/bin/env node
// The runtime is TypeScript run through tsx, so what ships is what the tests ran: no build step to forget.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../runtime/cli.ts');
const code = await main(process.argv);
process.exitCode = code;
