import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Queue } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { ImageArchive, sha256Of } from '../../../plugins/sink-bullmq/archive.js';
import { JOB_NAMES, QUEUES, SampleJob, type ArchivedImage } from '../../../plugins/sink-bullmq/jobs.js';
import { DatasetStore } from '../../../plugins/sink-bullmq/workers/dataset-store.js';
import { startWorker, type WorkerHandle } from '../../../plugins/sink-bullmq/workers/index.js';
import type { Defect, InspectionResult } from '../../../runtime/result.js';
import { sampleResult } from '../../helpers/samples.js';
import { scratch } from '../../helpers/scratch.js';
import { ROOT, silentLog } from '../../helpers/station.js';
import { readVoc } from '../../helpers/voc.js';
import { REDIS_URL as REDIS, uniquePrefix } from '../../helpers/redis.js';
import { queueOf, until, workerResources } from './helpers.js';

const fixture = (rel: string): Buffer => readFileSync(path.join(ROOT, 'fixtures', rel));
const GOOD = 'casting/ok_front/cast_ok_0_1021.jpeg';
const CRAZING = 'neu-det/crazing_7.jpg';
const INCLUSION = 'neu-det/inclusion_7.jpg';
const DEF = 'casting/def_front/cast_def_0_103.jpeg';
const ERR = 'casting/def_front/cast_def_0_1994.jpeg';
const GOOD2 = 'casting/ok_front/cast_ok_0_1917.jpeg';

const MODEL = { name: 'neu-det-yolo', version: '3', sha256: 'a'.repeat(64) };

/** VOC boxes as the station reports them: fired defects in source-image pixels. */
const vocDefects = (rel: string): Defect[] =>
  readVoc(path.join(ROOT, 'fixtures', rel.replace(/\.jpg$/, '.xml'))).map((b) => ({
    label: b.label,
    score: 0.9,
    rule: `reject-${b.label}`,
    box: { x: b.x1, y: b.y1, w: b.x2 - b.x1, h: b.y2 - b.y1 },
  }));

const resources = workerResources();

async function setup(): Promise<{ prefix: string; queue: Queue; archive: ImageArchive; archiveDir: string; out: string }> {
  const prefix = uniquePrefix();
  const queue = queueOf(QUEUES.samples, prefix);
  resources.prefix = prefix;
  resources.queue = queue;
  const archiveDir = scratch('lg-archive-');
  // inlineMaxBytes 0: the jobs carry keys, so the worker must read the archive folder.
  const archive = await ImageArchive.open(archiveDir, { maxBytes: 1e9, maxAgeMs: 0, inlineMaxBytes: 0, log: silentLog });
  return { prefix, queue, archive, archiveDir, out: scratch('lg-dataset-') };
}

async function start(options: Record<string, unknown>): Promise<WorkerHandle> {
  const w = await startWorker('dataset-export', { redis: REDIS, closeTimeoutMs: 2000, ...options }, silentLog);
  resources.workers.push(w);
  return w;
}

function sample(over: { result: Partial<InspectionResult>; label: string; image?: ArchivedImage; labelSource?: 'source' | 'model' }): SampleJob {
  return SampleJob.parse({
    result: sampleResult({ model: MODEL, ...over.result }),
    label: over.label,
    labelSource: over.labelSource ?? 'model',
    reasons: [over.result.verdict === 'pass' ? 'random-pass' : over.result.verdict === 'error' ? 'error' : 'fail'],
    why: [`picked for the test as ${over.label}`],
    ...(over.image === undefined ? {} : { image: over.image }),
  });
}

const add = (queue: Queue, job: SampleJob, jobId = job.result.resultId): Promise<unknown> =>
  queue.add(JOB_NAMES.samples, job, { jobId, attempts: 3, backoff: { type: 'fixed', delay: 50 } });

/** Every file under `dir`, relative, posix, sorted. */
function tree(dir: string, rel = ''): string[] {
  return readdirSync(path.join(dir, rel), { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? tree(dir, path.posix.join(rel, e.name)) : [path.posix.join(rel, e.name)]))
    .sort();
}

const manifest = (out: string): Array<Record<string, unknown>> =>
  readFileSync(path.join(out, 'manifest.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

const sha12 = (rel: string): string => sha256Of(fixture(rel)).slice(0, 12);

describe('worker dataset-export', () => {
  it('writes the classification, YOLO and anomalib layouts, review/, data.yaml and the manifest, file by file', async () => {
    const { queue, archive, archiveDir, out, prefix } = await setup();
    const put = (rel: string): Promise<ArchivedImage> => archive.put(fixture(rel), 'jpeg');
    const crazingImage = await put(CRAZING);

    const good = sample({ label: 'good', labelSource: 'source', image: await put(GOOD), result: { station: { id: 'L2 cam/1' }, partId: 'P#1', verdict: 'pass', rejectCode: 0, reasons: [], defects: [], frame: { ref: GOOD, width: 300, height: 300 } } });
    // Width and height absent: the worker reads them from the JPEG. The last box spills over the corner and is clipped.
    const crazing = sample({
      label: 'crazing',
      // inline: the worker must not need the archive for it
      image: { ...crazingImage, inline: fixture(CRAZING).toString('base64') },
      result: { station: { id: 'neu-01' }, partId: 'crazing-7', verdict: 'fail', rejectCode: 21, defects: [...vocDefects(CRAZING), { label: 'crazing', score: 0.6, rule: 'reject-crazing', box: { x: 190, y: 190, w: 20, h: 20 } }], frame: { ref: CRAZING } },
    });
    const inclusion = sample({ label: 'inclusion', image: await put(INCLUSION), result: { station: { id: 'neu-01' }, partId: 'inclusion-7', verdict: 'fail', rejectCode: 22, defects: vocDefects(INCLUSION), frame: { ref: INCLUSION, width: 200, height: 200 } } });
    const classifier = sample({ label: 'def_front', labelSource: 'source', image: await put(DEF), result: { station: { id: 'cast-01' }, partId: 'd1', verdict: 'fail', rejectCode: 11, defects: [{ label: 'defect', score: 0.93, rule: 'reject-defect' }] } });
    const error = sample({ label: 'error', image: await put(ERR), result: { station: { id: 'cast-01' }, partId: 'e1', verdict: 'error', rejectCode: 901, defects: [], reasons: [{ code: 'LG_ERR_STAGE_FAILED', message: 'boom', rejectCode: 901 }] } });
    const noImage = sample({ label: 'good', result: { station: { id: 'cast-01' }, partId: 'n1', verdict: 'pass', rejectCode: 0, defects: [] } });

    for (const j of [good, crazing, inclusion, classifier, error, noImage]) await add(queue, j);
    const w = await start({ prefix, out, archive: archiveDir });
    await until(() => w.processed() === 6, { what: 'six samples processed' });
    expect(w.failed()).toBe(0);

    const G = `L2_cam_1_P_1_${sha12(GOOD)}`;
    const C = `neu-01_crazing-7_${sha12(CRAZING)}`;
    const I = `neu-01_inclusion-7_${sha12(INCLUSION)}`;
    const D = `cast-01_d1_${sha12(DEF)}`;
    const E = `cast-01_e1_${sha12(ERR)}`;
    expect(tree(out)).toEqual(
      [
        'classes.json',
        'manifest.jsonl',
        'yolo/data.yaml',
        `classification/good/${G}.jpg`,
        `anomalib/train/good/${G}.jpg`,
        `yolo/images/${G}.jpg`,
        `yolo/labels/${G}.txt`,
        `classification/crazing/${C}.jpg`,
        `anomalib/test/crazing/${C}.jpg`,
        `yolo/images/${C}.jpg`,
        `yolo/labels/${C}.txt`,
        `classification/inclusion/${I}.jpg`,
        `anomalib/test/inclusion/${I}.jpg`,
        `yolo/images/${I}.jpg`,
        `yolo/labels/${I}.txt`,
        `classification/def_front/${D}.jpg`,
        `anomalib/test/def_front/${D}.jpg`,
        `review/${E}.jpg`,
      ].sort(),
    );

    // The bytes are the camera's, unchanged, wherever they were written.
    for (const [name, rel] of [[G, GOOD], [C, CRAZING], [I, INCLUSION], [D, DEF]] as const) {
      expect(readFileSync(path.join(out, 'classification', rel === GOOD ? 'good' : rel === DEF ? 'def_front' : rel === CRAZING ? 'crazing' : 'inclusion', `${name}.jpg`)).equals(fixture(rel))).toBe(true);
    }
    expect(readFileSync(path.join(out, `review/${E}.jpg`)).equals(fixture(ERR))).toBe(true);
    expect(readFileSync(path.join(out, `yolo/images/${I}.jpg`)).equals(fixture(INCLUSION))).toBe(true);

    // Boxes normalised by 200x200 (VOC xmin/ymin/xmax/ymax in crazing_7.xml and inclusion_7.xml).
    expect(readFileSync(path.join(out, `yolo/labels/${G}.txt`), 'utf8')).toBe('');
    expect(readFileSync(path.join(out, `yolo/labels/${C}.txt`), 'utf8')).toBe(
      ['0 0.470000 0.577500 0.930000 0.475000', '0 0.502500 0.167500 0.995000 0.315000', '0 0.975000 0.975000 0.050000 0.050000', ''].join('\n'),
    );
    expect(readFileSync(path.join(out, `yolo/labels/${I}.txt`), 'utf8')).toBe(['1 0.390000 0.347500 0.690000 0.135000', '1 0.835000 0.340000 0.160000 0.070000', ''].join('\n'));
    expect(JSON.parse(readFileSync(path.join(out, 'classes.json'), 'utf8'))).toEqual({ classes: ['crazing', 'inclusion'] });
    expect(readFileSync(path.join(out, 'yolo/data.yaml'), 'utf8')).toBe(
      [
        '# written by linegate dataset-export; indices are stable (see ../classes.json)',
        `path: ${path.join(out, 'yolo')}`,
        'train: images',
        'val: images',
        'names:',
        '  0: crazing',
        '  1: inclusion',
        '',
      ].join('\n'),
    );

    const lines = manifest(out);
    expect(lines.map((l) => l.resultId)).toEqual([good, crazing, inclusion, classifier, error].map((j) => j.result.resultId));
    expect(lines[0]).toEqual({
      resultId: good.result.resultId,
      station: 'L2 cam/1',
      partId: 'P#1',
      capturedAt: good.result.time.capturedAt,
      decidedAt: good.result.time.decidedAt,
      model: MODEL,
      verdict: 'pass',
      rejectCode: 0,
      label: 'good',
      labelSource: 'source',
      reasons: ['random-pass'],
      why: ['picked for the test as good'],
      defects: [],
      sha256: sha256Of(fixture(GOOD)),
      format: 'jpeg',
      source: good.result.source.ref,
      files: [`anomalib/train/good/${G}.jpg`, `classification/good/${G}.jpg`, `yolo/images/${G}.jpg`, `yolo/labels/${G}.txt`],
      skipped: [],
    });
    expect(lines[1]).toMatchObject({ label: 'crazing', verdict: 'fail', files: [`anomalib/test/crazing/${C}.jpg`, `classification/crazing/${C}.jpg`, `yolo/images/${C}.jpg`, `yolo/labels/${C}.txt`], skipped: [] });
    expect(lines[3]).toMatchObject({ label: 'def_front', files: [`anomalib/test/def_front/${D}.jpg`, `classification/def_front/${D}.jpg`], skipped: [{ layout: 'yolo', why: 'no defect carries a box (a classifier)' }] });
    expect(lines[4]).toMatchObject({ label: 'error', verdict: 'error', reasons: ['error'], files: [`review/${E}.jpg`], skipped: [] });
  });

  it('exports a result once however often it is delivered: same job again, a new job id, two at once, after a restart', async () => {
    const { queue, archive, archiveDir, out, prefix } = await setup();
    const a = sample({ label: 'inclusion', image: await archive.put(fixture(INCLUSION), 'jpeg'), result: { station: { id: 'neu-01' }, partId: 'i7', verdict: 'fail', defects: vocDefects(INCLUSION), frame: { ref: INCLUSION, width: 200, height: 200 } } });
    const b = sample({ label: 'good', image: await archive.put(fixture(GOOD2), 'jpeg'), result: { station: { id: 'cast-01' }, partId: 'g2', verdict: 'pass', rejectCode: 0, reasons: [], defects: [] } });
    const w1 = await start({ prefix, out, archive: archiveDir });
    await add(queue, a);
    await until(() => w1.processed() === 1, { what: 'first export' });
    const files = tree(out);
    const label = readFileSync(path.join(out, `yolo/labels/neu-01_i7_${sha12(INCLUSION)}.txt`), 'utf8');

    await add(queue, a, `${a.result.resultId}-again`);
    await until(() => w1.processed() === 2, { what: 'the redelivery' });
    expect(manifest(out)).toHaveLength(1);
    await w1.close();

    // A new worker learns from the manifest what is exported already; with concurrency 4, two copies of b arrive together.
    const w2 = await start({ prefix, out, archive: archiveDir, concurrency: 4 });
    await queue.addBulk([
      { name: JOB_NAMES.samples, data: a, opts: { jobId: `${a.result.resultId}-third` } },
      { name: JOB_NAMES.samples, data: b, opts: { jobId: `${b.result.resultId}-x` } },
      { name: JOB_NAMES.samples, data: b, opts: { jobId: `${b.result.resultId}-y` } },
    ]);
    await until(() => w2.processed() === 3, { what: 'three deliveries' });
    expect(manifest(out).map((l) => l.resultId)).toEqual([a.result.resultId, b.result.resultId]);
    expect(readFileSync(path.join(out, `yolo/labels/neu-01_i7_${sha12(INCLUSION)}.txt`), 'utf8')).toBe(label);
    expect(tree(out)).toEqual(
      [...files, `anomalib/train/good/cast-01_g2_${sha12(GOOD2)}.jpg`, `classification/good/cast-01_g2_${sha12(GOOD2)}.jpg`, `yolo/images/cast-01_g2_${sha12(GOOD2)}.jpg`, `yolo/labels/cast-01_g2_${sha12(GOOD2)}.txt`].sort(),
    );
    expect(JSON.parse(readFileSync(path.join(out, 'classes.json'), 'utf8'))).toEqual({ classes: ['inclusion'] });
  });

  it('fails a job that does not parse, and one whose image is gone, at once with a coded error (no retries)', async () => {
    const { queue, archive, out, prefix } = await setup();
    const image = await archive.put(fixture(DEF), 'jpeg');
    const gone = sample({ label: 'def_front', image: { ...image, key: 'ab/cd/not-there.jpg' }, result: { verdict: 'fail' } });
    await queue.add(JOB_NAMES.samples, { result: { resultId: 'x' }, label: '' }, { jobId: 'bad-1', attempts: 3 });
    await add(queue, gone);
    // No --archive: the missing-image job cannot be read from anywhere either way.
    const w = await start({ prefix, out, archive: scratch('lg-empty-archive-') });
    await until(() => w.failed() === 2, { what: 'two failures' });
    const bad = await queue.getJob('bad-1');
    expect(await bad?.getState()).toBe('failed');
    expect(bad?.attemptsMade).toBe(1);
    expect(bad?.failedReason).toMatch(/^LG_ERR_QUEUE_JOB_INVALID: job bad-1 in queue samples does not parse: /);
    const missing = await queue.getJob(gone.result.resultId);
    expect(await missing?.getState()).toBe('failed');
    expect(missing?.attemptsMade).toBe(1);
    expect(missing?.failedReason).toMatch(/^LG_ERR_ARCHIVE_MISSING: /);
    expect(w.processed()).toBe(0);
    expect(existsSync(path.join(out, 'manifest.jsonl'))).toBe(false);
  });

  it('refuses to start without --out, and with an option it does not take', async () => {
    await expect(startWorker('dataset-export', { redis: REDIS }, silentLog)).rejects.toMatchObject({ code: 'LG_ERR_WORKER_OPTIONS', path: 'out' });
    await expect(startWorker('dataset-export', { out: scratch('lg-x-'), retentionHours: 5 }, silentLog)).rejects.toMatchObject({ code: 'LG_ERR_WORKER_OPTIONS', path: 'retentionHours' });
    await expect(startWorker('dataset-export', { out: scratch('lg-x-'), redis: 'http://127.0.0.1:6379' }, silentLog)).rejects.toMatchObject({ code: 'LG_ERR_WORKER_OPTIONS', path: 'redis' });
  });
});

describe('the dataset folder', () => {
  it('cuts a torn last manifest line and remembers the complete ones', async () => {
    const out = scratch('lg-dataset-torn-');
    writeFileSync(path.join(out, 'manifest.jsonl'), '{"resultId":"r-1","files":[]}\n{"resultId":"r-2","fi');
    const store = await DatasetStore.open(out, silentLog);
    expect(store.has('r-1')).toBe(true);
    expect(store.has('r-2')).toBe(false);
    expect(readFileSync(path.join(out, 'manifest.jsonl'), 'utf8')).toBe('{"resultId":"r-1","files":[]}\n');
    await store.commit({ resultId: 'r-2', line: { resultId: 'r-2', files: [] } });
    expect(readFileSync(path.join(out, 'manifest.jsonl'), 'utf8')).toBe('{"resultId":"r-1","files":[]}\n{"resultId":"r-2","files":[]}\n');
    expect(readFileSync(path.join(out, 'yolo/data.yaml'), 'utf8')).toContain('names: {}\n');
  });

  it('refuses a classes.json that is not a class list rather than renumbering the classes', async () => {
    const out = scratch('lg-dataset-classes-');
    writeFileSync(path.join(out, 'classes.json'), '["crazing"]');
    await expect(DatasetStore.open(out, silentLog)).rejects.toMatchObject({ code: 'LG_ERR_EXPORT_WRITE' });
  });
});
