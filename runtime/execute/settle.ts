import type { FrameInput, Logger } from '../contract.js';
import type { InspectionResult } from '../result.js';
import { withTimeout } from './bounded.js';

/**
 * Tells the source that a part's result is final (a hot folder moves its file). Bounded by `ms`; a
 * failure is logged, never thrown: the part already has its result, whatever the source does.
 */
export async function settlePart(frame: Pick<FrameInput, 'settle'>, result: InspectionResult, ms: number, log: Logger): Promise<void> {
  if (frame.settle === undefined) return;
  try {
    // Called on the frame (or its image-less copy), as the contract declares settle a method of it.
    await withTimeout(frame.settle(result), ms, () => new Error(`settling part ${result.partId} timed out`));
  } catch (err) {
    log.error({ err, partId: result.partId }, 'the source could not settle the part');
  }
}
