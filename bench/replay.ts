import path from 'node:path';
import { pino } from 'pino';
import { compileStationFile } from '../runtime/compile/compile.js';
import { builtinRegistry } from '../runtime/registry/builtins.js';
import { replay } from '../runtime/replay/run.js';
import { Station } from '../runtime/station.js';
import { ROOT } from '../test/helpers/station.js';

const log = pino({ level: 'silent' });
const r2 = (v: number): number => Math.round(v * 100) / 100;

/**
 * `linegate replay` throughput on a labelled folder (whole command path:
 * listing, station start, inspection, annotations, metrics), against the live
 * station inspecting the same images from its folder source in the same run.
 */
export async function benchReplay(stationFile: string, dir: string, good: string[], rounds: number): Promise<Record<string, unknown>> {
  const station = path.join(ROOT, stationFile);
  const folder = path.join(ROOT, dir);
  await replay(station, folder, { good, log }); // warm-up: model load, page cache
  let images = 0;
  const t0 = performance.now();
  for (let i = 0; i < rounds; i++) images += (await replay(station, folder, { good, log })).report.images;
  const replayS = (performance.now() - t0) / 1000;

  const plan = await compileStationFile(station, builtinRegistry());
  let live = 0;
  const t1 = performance.now();
  for (let i = 0; i < rounds; i++) {
    const s = new Station({ ...plan, sinks: [] }, log);
    live += (await s.run()).frames;
    await s.close();
  }
  const liveS = (performance.now() - t1) / 1000;
  return {
    station: stationFile,
    dir,
    rounds,
    replay: { images, seconds: r2(replayS), imagesPerSecond: r2(images / replayS) },
    live: { images: live, seconds: r2(liveS), imagesPerSecond: r2(live / liveS) },
    ratios: { replayVsLiveImagesPerSecond: r2(images / replayS / (live / liveS)) },
  };
}
