import path from 'node:path';
import sharp from 'sharp';
import { z } from 'zod';
import { LinegateError, messageOf } from '../../../runtime/errors.js';
import { readArchivedImage } from '../archive.js';
import { SampleJob, type ArchivedImage } from '../jobs.js';
import { planExport, toYolo, type ExportPlan, type YoloBox, type YoloPlan } from './dataset-layout.js';
import { DatasetStore, MANIFEST } from './dataset-store.js';
import { BaseOptions, connectWorker, parseOptions, startHost } from './host.js';
import type { StartWorker, WorkerHandle } from './types.js';

/*
 * `linegate worker dataset-export`: turns the `samples` queue into a
 * retraining dataset that training tools read as is (layouts in
 * dataset-layout.ts), with one manifest line per image saying where it came
 * from. BullMQ delivers at least once, so a result already in the manifest is
 * acknowledged without writing anything.
 */

export const DatasetExportOptions = BaseOptions.extend({
  concurrency: BaseOptions.shape.concurrency.default(1),
  out: z.string().min(1).describe('the dataset folder'),
  archive: z.string().min(1).optional().describe("the station's image archive folder (a share when the worker runs elsewhere); not needed when images travel inline"),
}).strict();
export type DatasetExportSettings = z.infer<typeof DatasetExportOptions>;

/** What a job returns (kept in Redis as the job's return value). */
export interface ExportOutcome {
  readonly resultId: string;
  readonly exported: boolean;
  readonly files: readonly string[];
  /** Why nothing was written: `duplicate`, or the image is missing from the job. */
  readonly why?: string;
}

export const startDatasetExport: StartWorker = async (input, log) => {
  const o = parseOptions('dataset-export', DatasetExportOptions, input);
  const wlog = log.child({ worker: 'dataset-export' });
  const store = await DatasetStore.open(o.out, wlog);
  const archive = o.archive === undefined ? undefined : path.resolve(o.archive);
  // Two deliveries of one result at the same time (the sink sent it again under a new job id) share one export.
  const inflight = new Map<string, Promise<ExportOutcome>>();

  const handle = async (job: SampleJob, signal: AbortSignal): Promise<ExportOutcome> => {
    const id = job.result.resultId;
    const running = inflight.get(id);
    if (running !== undefined) {
      await running.catch(() => undefined);
      // When the first delivery failed, this one tries for itself.
      if (!store.has(id)) return handle(job, signal);
    }
    if (store.has(id)) return { resultId: id, exported: false, files: [], why: 'duplicate' };
    const image = job.image;
    if (image === undefined) {
      wlog.info({ resultId: id, why: job.why }, 'sample without an image: nothing to export');
      return { resultId: id, exported: false, files: [], why: 'the sample carries no image' };
    }
    const p = exportOne(store, archive, { ...job, image }, signal);
    inflight.set(id, p);
    try {
      return await p;
    } finally {
      inflight.delete(id);
    }
  };

  const connection = connectWorker(o.redis, wlog);
  const host: WorkerHandle = await startHost({
    name: 'dataset-export',
    queue: 'samples',
    schema: SampleJob,
    settings: o,
    connection,
    log: wlog,
    handle: (job, _info, signal) => handle(job, signal),
    onClose: () => store.settle(),
  });
  return host;
};

async function exportOne(store: DatasetStore, archive: string | undefined, job: SampleJob & { image: ArchivedImage }, signal: AbortSignal): Promise<ExportOutcome> {
  const r = job.result;
  const data = await readArchivedImage(archive, job.image);
  const plan: ExportPlan = planExport(job);
  for (const rel of plan.images) {
    signal.throwIfAborted();
    await store.writeAtomic(rel, data);
  }
  signal.throwIfAborted();
  const yolo = plan.yolo;
  const boxes = yolo?.plan.kind === 'boxes' ? await yoloBoxes(job, data, yolo.plan.defects) : yolo?.plan.kind === 'background' ? [] : undefined;
  const files = [...plan.images, ...(boxes === undefined || yolo === undefined ? [] : [yolo.labelFile])].sort();
  const skipped = yolo?.plan.kind === 'skipped' ? [{ layout: 'yolo', why: yolo.plan.why }] : [];
  const line = {
    resultId: r.resultId,
    station: r.station.id,
    ...(r.station.line === undefined ? {} : { line: r.station.line }),
    ...(r.station.hierarchy === undefined ? {} : { hierarchy: r.station.hierarchy }),
    partId: r.partId,
    capturedAt: r.time.capturedAt,
    decidedAt: r.time.decidedAt,
    model: r.model,
    verdict: r.verdict,
    rejectCode: r.rejectCode,
    label: job.label,
    labelSource: job.labelSource,
    reasons: job.reasons,
    why: job.why,
    defects: r.defects.map((d) => ({ label: d.label, score: d.score, ...(d.box === undefined ? {} : { box: d.box }), ...(d.rule === undefined ? {} : { rule: d.rule }) })),
    sha256: job.image.sha256,
    format: job.image.format,
    source: r.source.ref,
    files,
    skipped,
  };
  await store.commit({
    resultId: r.resultId,
    ...(boxes === undefined || yolo === undefined ? {} : { labelFile: { rel: yolo.labelFile, boxes } }),
    line,
  });
  return { resultId: r.resultId, exported: true, files: [...files, MANIFEST] };
}

/** The image size from the result when the station knew it, else from the image itself. */
async function yoloBoxes(job: SampleJob, data: Buffer, defects: Extract<YoloPlan, { kind: 'boxes' }>['defects']): Promise<YoloBox[]> {
  let { width, height } = job.result.frame;
  if (width === undefined || height === undefined) {
    try {
      const m = await sharp(data).metadata();
      width = m.width;
      height = m.height;
    } catch (e) {
      throw new LinegateError('LG_ERR_IMAGE_DECODE', [job.image?.key ?? job.result.frame.ref, messageOf(e)], { cause: e });
    }
  }
  if (width === undefined || height === undefined || width < 1 || height < 1) throw new LinegateError('LG_ERR_IMAGE_FORMAT', [job.result.frame.ref, 'no width and height to normalise the boxes by']);
  return defects.map((d) => toYolo(d.label, d.box, width, height));
}
