import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Health } from '../contract.js';
import type { InspectionResult } from '../result.js';
import type { Station } from '../station.js';

/* Prometheus metrics of one station, in a registry of its own (never prom-client's global one). */

const SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Label values taken from results (defect labels) are capped: a model with a runaway label set must not blow up the series. */
const MAX_LABEL_VALUES = 200;

/**
 * Counts results as the station emits them and reads the rest (in flight, lanes, spool, PLC link)
 * from the station's health at scrape time, so nothing is computed for a metric nobody scrapes.
 */
/** What the metrics read from the event stream (runtime/api/events.ts). */
export interface EventStreamCounts {
  readonly clients: number;
  /** Slow clients dropped since the start. */
  readonly dropped: number;
}

export class StationMetrics {
  readonly registry = new Registry();
  readonly #station: Station;
  readonly #results: Counter<'verdict'>;
  readonly #rejects: Counter<'reject_code'>;
  readonly #defects: Counter<'label'>;
  readonly #dropped: Counter;
  readonly #stage: Histogram<'step'>;
  readonly #cycle: Histogram;
  readonly #triggerToVerdict: Histogram;
  readonly #labels = new Set<string>();
  readonly #onResult = (r: InspectionResult): void => this.#count(r);
  readonly #onDrop = (): void => this.#dropped.inc();
  /** Outage counts last read from each PLC step's health: the counter grows by the difference. */
  readonly #outagesSeen = new Map<string, number>();
  #attached = false;

  constructor(station: Station, o: { readonly events?: EventStreamCounts } = {}) {
    this.#station = station;
    const registers = [this.registry];
    const id = station.plan.settings.id;
    this.registry.setDefaultLabels({ station: id });
    // No prom-client default (process) metrics: some of them (nodejs_active_handles_total, a gauge) fail promtool's lint.
    this.#results = new Counter({ name: 'linegate_results_total', help: 'Inspected parts by verdict (dropped frames are linegate_frames_dropped_total).', labelNames: ['verdict'], registers });
    for (const v of ['pass', 'fail', 'error']) this.#results.inc({ verdict: v }, 0);
    this.#rejects = new Counter({ name: 'linegate_rejects_total', help: 'Rejected parts (fail and error) by the numeric reject code the PLC gets.', labelNames: ['reject_code'], registers });
    this.#defects = new Counter({ name: 'linegate_defects_total', help: 'Defects found, by label.', labelNames: ['label'], registers });
    this.#dropped = new Counter({ name: 'linegate_frames_dropped_total', help: 'Frames the frame loop could not take (drop policy); each still went to the sinks as an error result.', registers });
    this.#stage = new Histogram({ name: 'linegate_stage_duration_seconds', help: 'Time each stage took on a part.', labelNames: ['step'], buckets: SECONDS, registers });
    this.#cycle = new Histogram({ name: 'linegate_cycle_duration_seconds', help: 'Frame arrival to verdict (the cycle budget runs over this).', buckets: SECONDS, registers });
    this.#triggerToVerdict = new Histogram({ name: 'linegate_trigger_to_verdict_seconds', help: 'PLC trigger seen to verdict decided, for PLC-triggered parts.', buckets: SECONDS, registers });

    const health = (): ReturnType<Station['health']> => station.health();
    new Gauge({ name: 'linegate_station_up', help: '1 while the station state is READY or PLAYING.', registers, collect() {
      const s = station.state;
      this.set(s === 'READY' || s === 'PLAYING' ? 1 : 0);
    } });
    new Gauge({ name: 'linegate_parts_in_flight', help: 'Inspection slots taken (parts, or stage calls running past their budget).', registers, collect() {
      this.set(numberAt(health().frames, 'inFlight'));
    } });
    new Gauge({ name: 'linegate_frames_queued', help: 'Frames waiting for an inspection slot.', registers, collect() {
      this.set(numberAt(health().frames, 'queued'));
    } });
    new Gauge({ name: 'linegate_sink_lane_depth', help: 'Results waiting in a background sink\'s lane.', labelNames: ['sink'], registers, collect() {
      this.reset();
      for (const [sink, n] of Object.entries(station.laneDepths())) this.set({ sink }, n);
    } });
    new Gauge({ name: 'linegate_spool_bytes', help: 'Bytes waiting in a queue sink\'s spool for Redis.', labelNames: ['step'], registers, collect() {
      this.reset();
      for (const [step, h] of Object.entries(health().steps)) if (typeof h.data?.pendingBytes === 'number') this.set({ step }, h.data.pendingBytes);
    } });
    new Gauge({ name: 'linegate_spool_oldest_age_seconds', help: 'How long the oldest record still in a queue sink\'s spool has waited for Redis (0 when none waits).', labelNames: ['step'], registers, collect() {
      this.reset();
      for (const [step, h] of Object.entries(health().steps)) if (typeof h.data?.oldestPendingAgeS === 'number') this.set({ step }, h.data.oldestPendingAgeS);
    } });
    const outagesSeen = this.#outagesSeen;
    const outages = new Counter({ name: 'linegate_plc_link_outages_total', help: 'Times a PLC link went down (each is followed by a reconnect).', labelNames: ['step'], registers });
    new Gauge({ name: 'linegate_plc_link_up', help: '1 while the PLC link is up.', labelNames: ['step'], registers, collect() {
      this.reset();
      for (const [step, h] of Object.entries(health().steps)) {
        if (h.data?.link !== 'up' && h.data?.link !== 'down') continue;
        this.set({ step }, h.data.link === 'up' ? 1 : 0);
        const n = numberAt({ status: h.status, detail: '', data: (h.data.cycles ?? {}) as Record<string, unknown> }, 'outages');
        const before = outagesSeen.get(step) ?? 0;
        if (n > before) outages.inc({ step }, n - before);
        else if (n === 0 && before === 0) outages.inc({ step }, 0);
        outagesSeen.set(step, Math.max(n, before));
      }
    } });
    const events = o.events;
    if (events !== undefined) {
      new Gauge({ name: 'linegate_event_clients', help: 'Clients connected to the server-sent-events stream (/api/events).', registers, collect() {
        this.set(events.clients);
      } });
      let droppedSeen = 0;
      new Counter({ name: 'linegate_event_clients_dropped_total', help: 'Event-stream clients dropped because they read too slowly (the station never waits for a reader).', registers, collect() {
        if (events.dropped > droppedSeen) this.inc(events.dropped - droppedSeen);
        droppedSeen = events.dropped;
      } });
    }
    // Read at scrape time: a deploy or rollback changes the model between two scrapes.
    new Gauge({ name: 'linegate_model_info', help: 'The model each model step runs now (always 1).', labelNames: ['step', 'name', 'version', 'sha256'], registers, collect() {
      this.reset();
      for (const m of station.plan.models ?? []) this.set({ step: m.step, name: m.model.name, version: m.model.version, sha256: m.model.sha256 }, 1);
    } });
    shadowMetrics(station, registers);
  }

  /** Starts counting the station's results; idempotent. */
  attach(): void {
    if (this.#attached) return;
    this.#attached = true;
    this.#station.on('result', this.#onResult);
    this.#station.on('drop', this.#onDrop);
  }

  /** Stops counting; idempotent. */
  detach(): void {
    if (!this.#attached) return;
    this.#attached = false;
    this.#station.off('result', this.#onResult);
    this.#station.off('drop', this.#onDrop);
  }

  async text(): Promise<{ readonly text: string; readonly contentType: string }> {
    return { text: await this.registry.metrics(), contentType: this.registry.contentType };
  }

  #count(r: InspectionResult): void {
    this.#results.inc({ verdict: r.verdict });
    if (r.verdict !== 'pass') this.#rejects.inc({ reject_code: String(r.rejectCode) });
    for (const d of r.defects) this.#defects.inc({ label: this.#capped(d.label) });
    for (const [step, ms] of Object.entries(r.timings.stages)) this.#stage.observe({ step }, ms / 1000);
    this.#cycle.observe(r.timings.totalMs / 1000);
    if (r.trigger !== undefined) {
      const s = (Date.parse(r.time.decidedAt) - Date.parse(r.trigger.raisedAt)) / 1000;
      if (Number.isFinite(s) && s >= 0) this.#triggerToVerdict.observe(s);
    }
  }

  #capped(label: string): string {
    if (this.#labels.has(label)) return label;
    if (this.#labels.size >= MAX_LABEL_VALUES) return '(other)';
    this.#labels.add(label);
    return label;
  }
}

/**
 * The shadow model's counts, as gauges: they belong to the shadow that runs now and start at 0 with
 * the next one (a counter must never go down). No series while none runs, but the info gauge at 0.
 */
function shadowMetrics(station: Station, registers: Registry[]): void {
  const running = (): Extract<ReturnType<Station['models']>['shadow'], { state: 'running' }> | undefined => {
    const s = station.models().shadow;
    return s.state === 'running' ? s : undefined;
  };
  new Gauge({ name: 'linegate_shadow_info', help: 'The shadow model running beside the station (1), its verdicts never reach the PLC.', labelNames: ['name', 'version', 'sha256'], registers, collect() {
    this.reset();
    const s = running();
    if (s !== undefined) this.set({ name: s.model.name, version: s.model.version, sha256: s.model.sha256 }, 1);
  } });
  const counts = [
    ['linegate_shadow_frames', 'Frames the running shadow model judged.', 'frames'],
    ['linegate_shadow_skipped', 'Frames the running shadow model skipped: it was busy, or the line had parts waiting (a shadow is dropped first under load).', 'skipped'],
    ['linegate_shadow_failed', 'Frames the running shadow model could not judge (its own error verdict).', 'failed'],
    ['linegate_shadow_samples_queued', 'Disagreements the running shadow sent to the samples queue.', 'queued'],
  ] as const;
  for (const [name, help, key] of counts) {
    new Gauge({ name, help, registers, collect() {
      this.set(running()?.[key] ?? 0);
    } });
  }
  new Gauge({ name: 'linegate_shadow_compared', help: "Frames compared with the running shadow, by the station's class (pass, error, or the failing label).", labelNames: ['class'], registers, collect() {
    this.reset();
    for (const [c, v] of Object.entries(running()?.agreement.byClass ?? {})) this.set({ class: c }, v.total);
  } });
  new Gauge({ name: 'linegate_shadow_agreed', help: 'Of those, the frames where the shadow gave the same verdict, by class.', labelNames: ['class'], registers, collect() {
    this.reset();
    for (const [c, v] of Object.entries(running()?.agreement.byClass ?? {})) this.set({ class: c }, v.agree);
  } });
  new Gauge({ name: 'linegate_shadow_agreement_ratio', help: 'Agreed over compared, all classes (0 before the first comparison).', registers, collect() {
    this.set(running()?.agreement.rate ?? 0);
  } });
}

function numberAt(h: Health, key: string): number {
  const v = h.data?.[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}
