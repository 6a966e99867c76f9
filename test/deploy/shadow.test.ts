import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { SampleJob } from '../../plugins/sink-bullmq/jobs.js';
import { StationMetrics } from '../../runtime/api/metrics.js';
import type { Station } from '../../runtime/station.js';
import { probe } from '../helpers/probe-plugins.js';
import { dropPrefix, jobsOf, uniquePrefix } from '../helpers/redis.js';
import { testRoot } from '../helpers/roots.js';
import { until } from '../helpers/until.js';
import { CASTING_1, castingStation, editedPackage, more, packageFiles, running } from './helpers.js';

const PROMTOOL = '/usr/bin/promtool';
const prefixes: string[] = [];
const open: Station[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) {
    s.stop();
    await s.close();
  }
});
afterAll(async () => {
  for (const p of prefixes) await dropPrefix(p);
});

describe('a shadow model', () => {
  it('judges the line frames after their verdicts, never reaches the PLC, counts agreement by class and queues each disagreement as a shadow sample', async () => {
    const root = testRoot();
    const prefix = uniquePrefix();
    prefixes.push(prefix);
    const id = 'shadow-01';
    const station = await castingStation(id, root, {
      rateHz: 20,
      sinks: [
        { name: 'plc', use: 'test/sink@1', config: { probe: `${id}-plc` } },
        // Nothing sampled of the station's own choosing: every job on the samples queue is the shadow's.
        { name: 'queue', use: 'core/bullmq@1', config: { prefix, sampling: { fails: false, errors: false, nearThreshold: 0, passFraction: 0 } } },
      ],
    });
    open.push(station);
    await station.start();
    const run = running(station);
    await more(run.results, 2);

    // The same weights judged at a threshold no casting passes: it disagrees on every part the station passes.
    const strict = editedPackage(root, CASTING_1, 'strict', (m) => {
      m.version = '1-strict';
      m.thresholds = { default: 0.000001, perLabel: {} };
    });
    const models: unknown[] = [];
    station.on('model', (m) => void models.push(m));
    const started = await station.startShadow(packageFiles(strict), { by: 'data-sci' });
    expect(started).toMatchObject({ state: 'running', model: { name: 'casting-cls', version: '1-strict' }, by: 'data-sci' });

    await until(() => {
      const s = station.models().shadow;
      return s.state === 'running' && s.agreement.total >= 8 && (s.agreement.byClass.pass?.total ?? 0) >= 1;
    }, { ms: 60_000, what: 'eight frames compared, a pass among them' });
    const status = station.models().shadow;
    if (status.state !== 'running') throw new Error('shadow stopped');
    const pass = status.agreement.byClass.pass!;
    expect(pass.agree).toBe(0);
    // A part the station failed, the strict shadow fails too.
    const failed = Object.entries(status.agreement.byClass).filter(([k]) => k !== 'pass');
    for (const [, c] of failed) expect(c.agree).toBe(c.total);
    expect(status.agreement.rate).toBeCloseTo(status.agreement.agree / status.agreement.total, 10);

    // Its own series in /metrics, beside the station's model; promtool takes them.
    const metrics = (await new StationMetrics(station).text()).text;
    expect(metrics).toMatch(/^linegate_shadow_info\{name="casting-cls",version="1-strict",sha256="[0-9a-f]{64}",station="shadow-01"\} 1$/m);
    expect(metrics).toMatch(/^linegate_model_info\{step="model",name="casting-cls",version="1",/m);
    expect(Number(/^linegate_shadow_compared\{class="pass",station="shadow-01"\} (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1);
    expect(/^linegate_shadow_agreed\{class="pass",station="shadow-01"\} 0$/m.test(metrics)).toBe(true);
    if (existsSync(PROMTOOL)) {
      const out = spawnSync(PROMTOOL, ['check', 'metrics'], { input: metrics, encoding: 'utf8' });
      expect(out.stderr + out.stdout).toBe('');
    } else console.warn(`promtool check skipped: ${PROMTOOL} is absent (apt-get install prometheus)`);

    const stopped = await station.stopShadow({ by: 'data-sci' });
    if (stopped.state !== 'off' || stopped.last === undefined) throw new Error(`expected the last counts, got ${JSON.stringify(stopped)}`);
    const last = stopped.last;
    expect(last.agreement.total).toBeGreaterThanOrEqual(status.agreement.total);
    expect(last.queued).toBe(last.agreement.byClass.pass!.total);
    await until(() => models.some((m) => (m as { shadow: { state: string } }).shadow.state === 'off'), { what: 'a model event saying the shadow is off' });
    await more(run.results, 2);
    station.stop();
    await run.done;

    // The PLC side heard one verdict per frame, every one the station's own model's.
    const plc = probe(`${id}-plc`).results;
    expect(plc.length).toBe(run.results.length);
    expect(new Set(plc.map((r) => r.model?.version))).toEqual(new Set(['1']));
    expect(new Set(plc.map((r) => r.sequence)).size).toBe(plc.length);

    // Every disagreement on the samples queue (the queue sink flushed at close), with what the shadow said.
    await station.close();
    const jobs = await jobsOf(prefix, 'samples');
    expect(jobs.length).toBe(last.queued);
    for (const j of jobs) {
      const job = SampleJob.parse(j.data);
      expect(job.reasons).toEqual(['shadow']);
      expect(j.id).toBe(`${job.result.resultId}-shadow`);
      expect(job.result.verdict).toBe('pass');
      expect(job.shadow).toMatchObject({ verdict: 'fail', model: { version: '1-strict' } });
      expect(job.why[0]).toMatch(/shadow casting-cls@1-strict says fail/);
      expect(job.image?.sha256).toMatch(/^[0-9a-f]{64}$/);
    }
  });

  it('steps aside while the line is saturated (dropped first under load)', async () => {
    const root = testRoot();
    const station = await castingStation('shadow-02', root, { maxInFlight: 1 });
    open.push(station);
    await station.start();
    const run = running(station);
    await station.startShadow(packageFiles(path.join(CASTING_1)), { by: 't' });
    await more(run.results, 40);
    const s = station.models().shadow;
    station.stop();
    await run.done;
    if (s.state !== 'running') throw new Error('shadow stopped');
    // An unpaced folder keeps the one slot busy and a frame queued: the shadow skips rather than compete.
    expect(s.skipped).toBeGreaterThan(0);
    expect(s.frames + s.skipped).toBeLessThanOrEqual(run.results.length);
  });
});
