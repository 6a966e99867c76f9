import { access } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import type { Calibration as CalibrationType } from '../contract.js';
import { LinegateError } from '../errors.js';
import { ModelRef } from '../result.js';
import { deepFreeze } from './freeze.js';
import { loadDataFile } from './load.js';

/** calibration/<station>.json: thresholds, ROI and scale for one station, with where they came from. */
export const Calibration = z
  .object({
    station: z.string().min(1),
    roi: z.object({ x: z.number().int().min(0), y: z.number().int().min(0), width: z.number().int().min(1), height: z.number().int().min(1) }).strict().optional(),
    mmPerPixel: z.number().positive().optional(),
    thresholds: z.record(z.string(), z.number().min(0).max(1)).default({}),
    provenance: z
      .object({
        date: z.string().min(1),
        method: z.string().min(1),
        model: ModelRef.nullable()
          .optional()
          .describe('the model the thresholds were chosen for; a station running another sha256 is refused unless it sets calibration.allowModelMismatch'),
      })
      .catchall(z.unknown())
      .describe('who or what set these values, when, how, and on which data'),
  })
  .strict();

/** Where the station's calibration file is (or would be): the file it names, else calibration/<station id>.json under the root. */
export function calibrationPath(root: string, stationId: string, file: string | undefined): string {
  return file === undefined ? path.join(root, 'calibration', `${stationId}.json`) : path.resolve(root, file);
}

/**
 * Loads the station's calibration: the file the station names, or
 * calibration/<station id>.json under the root when it exists. A station
 * without calibration runs on its own rule values.
 */
export async function loadCalibration(root: string, stationId: string, file: string | undefined): Promise<CalibrationType | undefined> {
  const target = calibrationPath(root, stationId, file);
  if (file === undefined) {
    try {
      await access(target);
    } catch {
      return undefined;
    }
  }
  let loaded;
  try {
    loaded = await loadDataFile(target);
  } catch (e) {
    const cause = e instanceof LinegateError ? e.message : String(e);
    throw new LinegateError('LG_ERR_CALIBRATION_INVALID', [target, cause], { path: 'station.calibration', cause: e });
  }
  const parsed = Calibration.safeParse(loaded.data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new LinegateError('LG_ERR_CALIBRATION_INVALID', [target, `${issue.path.join('.') || '(top level)'}: ${issue.message}`], { path: 'station.calibration' });
  }
  if (parsed.data.station !== stationId) {
    throw new LinegateError('LG_ERR_CALIBRATION_INVALID', [target, `it is for station "${parsed.data.station}", not "${stationId}"`], { path: 'station.calibration' });
  }
  return deepFreeze(parsed.data);
}
