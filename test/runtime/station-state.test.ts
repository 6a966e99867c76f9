import { afterEach, describe, expect, it } from 'vitest';
import { STATION_STATES, canMove, type StationState } from '../../runtime/execute/station-state.js';
import type { Station } from '../../runtime/station.js';
import { probe } from '../helpers/probe-plugins.js';
import { closeProbeStations, probeStation } from '../helpers/probe-station.js';
import { stationFrom } from '../helpers/station.js';
import { until } from '../helpers/until.js';

afterEach(closeProbeStations);

/** Every state the station moves through, from the `state` event. */
function record(station: Station): StationState[] {
  const seen: StationState[] = [station.state];
  station.on('state', (to) => void seen.push(to));
  return seen;
}

/** A station whose source cannot start (its folder does not exist). */
function failing(name: string): Station {
  return stationFrom({
    station: { id: 'state-test' },
    source: { name: 'cam', use: 'core/folder-source@1', config: { dir: 'no/such/folder' } },
    stages: [
      { name: 'work', use: 'test/stage@1', config: { probe: name } },
      { name: 'verdict', use: 'test/decide@1', config: { probe: name } },
    ],
    sinks: [{ name: 'plc', use: 'test/sink@1', config: { probe: `${name}-plc` } }],
  });
}

describe('the station state machine', () => {
  it('allows only its own transitions', () => {
    const legal: [StationState, StationState][] = [
      ['NULL', 'STARTING'],
      ['NULL', 'CLOSING'],
      ['STARTING', 'READY'],
      ['STARTING', 'FAILED'],
      ['READY', 'PLAYING'],
      ['READY', 'CLOSING'],
      ['PLAYING', 'DRAINING'],
      ['DRAINING', 'DRAINED'],
      ['DRAINED', 'CLOSING'],
      ['FAILED', 'CLOSING'],
      ['CLOSING', 'CLOSED'],
    ];
    for (const from of STATION_STATES) {
      for (const to of STATION_STATES) {
        expect(canMove(from, to), `${from} -> ${to}`).toBe(legal.some(([f, t]) => f === from && t === to));
      }
    }
  });

  it('NULL -> STARTING -> READY on start(), and the sinks hear started() once', async () => {
    const { station, name } = probeStation({ source: { count: 1 } });
    const seen = record(station);
    await Promise.all([station.start(), station.start()]);
    expect(seen).toEqual(['NULL', 'STARTING', 'READY']);
    expect(probe(`${name}-plc`).calls).toEqual(['started']);
  });

  it('READY -> PLAYING -> DRAINING -> DRAINED when the source ends, then CLOSING -> CLOSED on close()', async () => {
    const { station } = probeStation({ source: { count: 3 } });
    const seen = record(station);
    await station.run();
    expect(station.state).toBe('DRAINED');
    await station.close();
    expect(seen).toEqual(['NULL', 'STARTING', 'READY', 'PLAYING', 'DRAINING', 'DRAINED', 'CLOSING', 'CLOSED']);
  });

  it('STARTING -> FAILED when a step cannot start; close() then ends in CLOSED and a new start is refused', async () => {
    const station = failing('failing-1');
    const seen = record(station);
    await expect(station.start()).rejects.toMatchObject({ code: 'LG_ERR_SOURCE_NOT_FOUND' });
    expect(station.state).toBe('FAILED');
    expect(station.health()).toMatchObject({ status: 'down', state: 'FAILED' });
    await station.close();
    expect(seen).toEqual(['NULL', 'STARTING', 'FAILED', 'CLOSING', 'CLOSED']);
    await expect(station.start()).rejects.toThrow(/CLOSED/);
  });

  it('refuses start() and run() after close(), and close() before start() closes nothing', async () => {
    const { station, name } = probeStation({ source: { count: 1 } });
    const seen = record(station);
    await station.close();
    expect(seen).toEqual(['NULL', 'CLOSING', 'CLOSED']);
    await expect(station.start()).rejects.toThrow(/CLOSED/);
    await expect(station.run()).rejects.toThrow(/CLOSED/);
    expect(probe(name).events).toEqual([]);
  });

  it('refuses a run() asked for after close(), even while the station is still closing', async () => {
    const { station, name } = probeStation({ source: { count: 3 } });
    await station.start();
    const closing = station.close();
    await expect(station.run()).rejects.toThrow(/close\(\) was called/);
    await closing;
    expect(station.state).toBe('CLOSED');
    expect(probe(`${name}-plc`).results).toEqual([]);
  });

  it('stop before start: run() starts, takes no frame, tells the sinks it stops, and drains', async () => {
    const { station, name } = probeStation({ source: { count: 5 } });
    const seen = record(station);
    station.stop();
    expect(station.state).toBe('NULL');
    const summary = await station.run();
    expect(summary.frames).toBe(0);
    expect(seen).toEqual(['NULL', 'STARTING', 'READY', 'PLAYING', 'DRAINING', 'DRAINED']);
    expect(probe(`${name}-plc`).calls).toEqual(['started', 'stopping']);
  });

  it('close twice: one CLOSING, one CLOSED, each step closed once', async () => {
    const { station, name } = probeStation({ source: { count: 2 } });
    const seen = record(station);
    await station.run();
    await Promise.all([station.close(), station.close()]);
    await station.close();
    expect(seen.filter((s) => s === 'CLOSING')).toHaveLength(1);
    expect(seen.filter((s) => s === 'CLOSED')).toHaveLength(1);
    expect(probe(name).events.filter((e) => e.startsWith('close:'))).toEqual(['close:cam', 'close:work', 'close:verdict']);
    expect(probe(`${name}-plc`).calls.filter((c) => c === 'close')).toHaveLength(1);
  });

  it('close during start: waits for the start, then closes; run() that was starting takes no frame', async () => {
    const { station, name } = probeStation({ source: { count: 0 } });
    const seen = record(station);
    const running = station.run();
    expect(station.state).toBe('STARTING');
    const closing = station.close();
    const summary = await running;
    await closing;
    expect(summary.frames).toBe(0);
    expect(seen).toEqual(['NULL', 'STARTING', 'READY', 'PLAYING', 'DRAINING', 'DRAINED', 'CLOSING', 'CLOSED']);
    expect(probe(`${name}-plc`).calls).toEqual(['started', 'stopping', 'close']);
  });

  it('close during start without run(): READY -> CLOSING -> CLOSED, and the sinks hear stopping() before close', async () => {
    const { station, name } = probeStation({ source: { count: 0 } });
    const seen = record(station);
    const starting = station.start();
    await station.close();
    await starting;
    expect(seen).toEqual(['NULL', 'STARTING', 'READY', 'CLOSING', 'CLOSED']);
    expect(probe(`${name}-plc`).calls).toEqual(['started', 'stopping', 'close']);
  });

  it('stop during the drain changes nothing: stopping() is called once and the drain finishes', async () => {
    const { station, name } = probeStation({ station: { maxInFlight: 1, queueSize: 2 }, source: { count: 3 }, stage: { delayMs: 20 } });
    station.on('state', (to) => {
      if (to === 'DRAINING') {
        station.stop();
        station.stop();
      }
    });
    const seen = record(station);
    const summary = await station.run();
    expect(summary.frames).toBe(3);
    expect(seen).toEqual(['NULL', 'STARTING', 'READY', 'PLAYING', 'DRAINING', 'DRAINED']);
    expect(probe(`${name}-plc`).calls.filter((c) => c === 'stopping')).toHaveLength(1);
    expect(probe(`${name}-plc`).results).toHaveLength(3);
  });

  it('stop while playing: PLAYING -> DRAINING, and what had arrived is still inspected', async () => {
    const { station, name } = probeStation({ source: { count: 0, intervalMs: 2 }, stage: { delayMs: 5 } });
    const seen = record(station);
    station.on('result', (r) => {
      if (r.sequence === 2) station.stop();
    });
    const summary = await station.run();
    expect(seen).toEqual(['NULL', 'STARTING', 'READY', 'PLAYING', 'DRAINING', 'DRAINED']);
    expect(probe(`${name}-plc`).results).toHaveLength(summary.frames);
  });
});

describe('a step that starts too late', () => {
  it('fails the start with LG_ERR_PLUGIN_INIT_TIMEOUT, and its instance is closed when it arrives after all', async () => {
    const name = 'late-init';
    const station = stationFrom({
      station: { id: 'late-init', initTimeoutMs: 100 },
      // Only the late sink may be late: the history's own start (a thread and an SQLite file) can pass 100 ms on a loaded machine.
      history: false,
      source: { name: 'cam', use: 'test/source@1', config: { probe: name } },
      stages: [
        { name: 'work', use: 'test/stage@1', config: { probe: name } },
        { name: 'verdict', use: 'test/decide@1', config: { probe: name } },
      ],
      sinks: [{ name: 'plc', use: 'test/sink@1', config: { probe: `${name}-plc`, initDelayMs: 400 } }],
    });
    await expect(station.start()).rejects.toMatchObject({ code: 'LG_ERR_PLUGIN_INIT_TIMEOUT', step: 'plc' });
    // the instance that arrived late is closed: its timers and sockets do not outlive the station
    await until(() => probe(`${name}-plc`).events.includes('close:plc'));
    expect(probe(`${name}-plc`).events).toEqual(['init:plc', 'close:plc']);
    await station.close();
  });
});

describe('the sinks hear stopping() once, before the drain', () => {
  const lastWrite = (calls: string[]): number => calls.reduce((at, c, i) => (c.startsWith('write:') ? i : at), -1);

  it('when --max-frames is reached', async () => {
    const { station, name } = probeStation({ station: { maxInFlight: 1, queueSize: 2 }, source: { count: 0 }, stage: { delayMs: 15 } });
    await station.run({ maxFrames: 3 });
    const { calls } = probe(`${name}-plc`);
    expect(calls.filter((c) => c === 'stopping')).toHaveLength(1);
    expect(calls.indexOf('stopping')).toBeLessThan(calls.indexOf('write:2'));
    expect(lastWrite(calls)).toBeGreaterThan(calls.indexOf('stopping'));
  });

  it('when the source ends', async () => {
    const { station, name } = probeStation({ station: { maxInFlight: 1, queueSize: 2 }, source: { count: 3 }, stage: { delayMs: 15 } });
    await station.run();
    const { calls } = probe(`${name}-plc`);
    expect(calls.filter((c) => c === 'stopping')).toHaveLength(1);
    expect(calls.indexOf('stopping')).toBeLessThan(calls.indexOf('write:2'));
  });

  it('when stop() is called, and again not at close', async () => {
    const { station, name } = probeStation({ station: { maxInFlight: 1, queueSize: 2 }, source: { count: 0, intervalMs: 1 }, stage: { delayMs: 15 } });
    station.on('result', (r) => {
      if (r.sequence === 0) station.stop();
    });
    const summary = await station.run();
    await station.close();
    const { calls } = probe(`${name}-plc`);
    expect(calls.filter((c) => c === 'stopping')).toHaveLength(1);
    expect(summary.frames).toBeGreaterThan(1);
    expect(calls.indexOf('stopping')).toBeLessThan(calls.indexOf(`write:${summary.frames - 1}`));
  });
});

describe('the station health', () => {
  it('is down with the state before start and after close, and never calls into a closed step', async () => {
    const { station, name } = probeStation({ source: { count: 2 }, sinks: [{ name: 'plc', critical: true, config: { health: 'ok' } }] });
    expect(station.health()).toMatchObject({ status: 'down', state: 'NULL', steps: {} });
    await station.run();
    expect(station.health()).toMatchObject({ status: 'ok', state: 'DRAINED', frames: { status: 'ok' }, steps: { plc: { status: 'ok', detail: 'probe' } } });
    await station.close();
    const calls = probe(`${name}-plc`).calls.length;
    expect(station.health()).toMatchObject({ status: 'down', state: 'CLOSED', steps: {} });
    expect(probe(`${name}-plc`).calls).toHaveLength(calls);
  });

  it('reports a step whose health() throws as down instead of throwing', async () => {
    const { station } = probeStation({ source: { count: 1 }, sinks: [{ name: 'plc', critical: true, config: { health: 'throws' } }] });
    await station.start();
    expect(station.health()).toMatchObject({ status: 'down', state: 'READY', steps: { plc: { status: 'down', detail: expect.stringContaining('probe health bug') } } });
  });
});
