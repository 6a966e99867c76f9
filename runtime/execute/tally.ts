import { performance } from 'node:perf_hooks';
import type { InspectionResult } from '../result.js';
import { Histogram } from '../observability/histogram.js';

export interface RunSummary {
  /** Every frame the source gave: pass + fail + error + dropped + undelivered. */
  readonly frames: number;
  readonly pass: number;
  readonly fail: number;
  readonly error: number;
  readonly dropped: number;
  /** Inspected parts whose result some critical sink did not take (failed or skipped): the PLC may not know their verdict. */
  readonly undelivered: number;
  readonly fps: number;
  readonly latencyMs: { readonly p50: number; readonly p95: number; readonly p99: number };
}

/** The run's counts and latencies, in constant memory, for the summary `linegate run` prints. */
export class Tally {
  readonly #latency = new Histogram();
  readonly #counts = { frames: 0, pass: 0, fail: 0, error: 0, undelivered: 0 };
  #firstAt: number | undefined;

  get frames(): number {
    return this.#counts.frames;
  }

  arrived(at: number): void {
    this.#firstAt ??= at;
    this.#counts.frames++;
  }

  /** An inspected part's final result, `ms` after its frame arrived. */
  finished(result: InspectionResult, ms: number): void {
    if (missedCritical(result)) this.#counts.undelivered++;
    else this.#counts[result.verdict]++;
    this.#latency.record(ms);
  }

  summary(dropped: number, startedAt: number): RunSummary {
    const elapsedS = (performance.now() - (this.#firstAt ?? startedAt)) / 1000;
    const round = (v: number): number => Math.round(v * 100) / 100;
    const { frames, pass, fail, error, undelivered } = this.#counts;
    return {
      frames,
      pass,
      fail,
      error,
      dropped,
      undelivered,
      fps: elapsedS > 0 ? round(frames / elapsedS) : 0,
      latencyMs: { p50: round(this.#latency.quantile(0.5)), p95: round(this.#latency.quantile(0.95)), p99: round(this.#latency.quantile(0.99)) },
    };
  }
}

/** Some critical sink (the PLC) did not take the result: its verdict may never have reached the line. */
function missedCritical(result: InspectionResult): boolean {
  return Object.values(result.delivery).some((d) => d.critical && (d.status === 'failed' || d.status === 'skipped'));
}
