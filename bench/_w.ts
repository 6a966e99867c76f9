import { spawn } from 'node:child_process';
import path from 'node:path';
import { pino } from 'pino';
import { PlcLink } from '../plugins/opcua-plc/link.js';
import { defaultTagMap } from '../plugins/opcua-plc/tags.js';
const child = spawn(process.execPath, [path.resolve('bin/linegate.mjs'), 'plc-sim', '--port', '0', '--rate', '0', '--no-pretty'], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
let err = '';
const port = await new Promise<number>((res) => child.stderr.on('data', (d) => { err += d; const m = /listening on opc\.tcp:\/\/127\.0\.0\.1:(\d+)/.exec(err); if (m) res(Number(m[1])); }));
const link = await PlcLink.open({ endpoint: `opc.tcp://127.0.0.1:${port}/`, tags: defaultTagMap(), security: { mode: 'None', policy: 'None' }, connectAttempts: 2, connectDelayMs: 200, sessionTimeoutMs: 20000, pkiDir: '/tmp/exp/pki', applicationUri: 'urn:x:linegate', log: pino({ level: 'silent' }) });
const t: number[] = []; const t1: number[] = [];
for (let i = 0; i < 300; i++) {
  let a = performance.now();
  await link.write({ resultPartId: `P${i}`, verdict: 2, rejectCode: 1, score: 0.5, resultCounter: i, modelVersion: 'x@1' });
  t.push(performance.now() - a);
  a = performance.now();
  await link.write({ resultValid: i % 2 === 0 });
  t1.push(performance.now() - a);
  await new Promise((r) => setTimeout(r, 5));
}
const med = (x: number[]) => [...x].sort((p, q) => p - q)[Math.floor(x.length / 2)]!.toFixed(2);
console.log('payload write p50', med(t), 'rv write p50', med(t1));
await link.close(); process.kill(-child.pid!, 'SIGKILL');
