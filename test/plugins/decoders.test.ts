import { describe, expect, it } from 'vitest';
import type { Part, PluginContext, Tensor } from '../../runtime/contract.js';
import type { Transform } from '../../plugins/model-onnx/preprocess.js';
import { classifyDecode } from '../../plugins/postprocess-classify-decode/index.js';
import { yoloDecode } from '../../plugins/postprocess-yolo-decode/index.js';
import { segmentDecode } from '../../plugins/postprocess-segment-decode/index.js';
import { anomalyDecode } from '../../plugins/postprocess-anomaly-decode/index.js';
import { thresholdRules } from '../../plugins/decision-threshold-rules/index.js';
import { connectedComponents } from '../../plugins/lib/regions.js';
import { contextFor, frameOf } from '../helpers/samples.js';
import { f32, identity, manifests, partWith } from '../helpers/model-parts.js';

const ctx = (over: Partial<PluginContext> = {}): PluginContext => ({ ...contextFor(new AbortController().signal), ...over });

describe('core/classify-decode@1', () => {
  const manifest = manifests.classification;
  const stage = () => classifyDecode.init({}, ctx());

  it('applies softmax and scores each defect label and the part as 1 - p(ok)', async () => {
    const { findings } = await (await stage()).run(partWith(manifest, { logits: f32([1, 3], [0, Math.log(3), 0]) }), ctx());
    expect(findings!.scores.defect).toBeCloseTo(0.8, 6);
    expect(findings!.defects).toEqual([
      { label: 'crack', score: expect.closeTo(0.6, 6) },
      { label: 'burr', score: expect.closeTo(0.2, 6) },
    ]);
  });

  it('takes the worst tile and reports it as the box', async () => {
    const tiles = [identity(50, 50), identity(50, 50, { x: 50, y: 0 })];
    const out = f32([2, 3], [5, 0, 0, 0, 5, 0]);
    const { findings } = await (await stage()).run(partWith(manifest, { logits: out }, tiles), ctx());
    expect(findings!.defects[0]).toMatchObject({ label: 'crack', box: { x: 50, y: 0, w: 50, h: 50 } });
  });

  it('refuses an output whose class count is not the labels count, with LG_ERR_MODEL_DECODE', async () => {
    await expect((await stage()).run(partWith(manifest, { logits: f32([1, 2], [0, 1]) }), ctx())).rejects.toMatchObject({ code: 'LG_ERR_MODEL_DECODE' });
  });
});

describe('core/yolo-decode@1', () => {
  const manifest = manifests.yolo;
  /** (1, 4+nc, N) from rows of [cx, cy, w, h, s0, s1]. */
  const raw = (cands: number[][]): Tensor => {
    const n = cands.length;
    const data = new Float32Array(6 * n);
    cands.forEach((c, a) => c.forEach((v, r) => (data[r * n + a] = v)));
    return f32([1, 6, n], data);
  };

  it('filters by score, suppresses overlaps within a class only, and maps boxes to the source', async () => {
    const out = raw([
      [50, 50, 20, 20, 0.9, 0.1], // crack
      [52, 50, 20, 20, 0.8, 0.0], // same crack, suppressed
      [52, 50, 20, 20, 0.0, 0.7], // a pit at the same place: kept (class-wise NMS)
      [10, 10, 4, 4, 0.1, 0.2], // below 0.25
    ]);
    const t: Transform = { originX: 0, originY: 0, scaleX: 2, scaleY: 2, padX: 0, padY: 0, region: { x: 0, y: 0, width: 50, height: 50 } };
    const { findings } = await (await yoloDecode.init({}, ctx())).run(partWith(manifest('xywh-scores'), { output0: out }, [t]), ctx());
    expect(findings!.defects.map((d) => [d.label, d.score])).toEqual([
      ['crack', expect.closeTo(0.9, 5)],
      ['pit', expect.closeTo(0.7, 5)],
    ]);
    expect(findings!.defects[0]!.box).toEqual({ x: 20, y: 20, w: 10, h: 10 });
    expect(findings!.scores).toMatchObject({ defect: expect.closeTo(0.9, 5), crack: expect.closeTo(0.9, 5), pit: expect.closeTo(0.7, 5) });
  });

  it('reads end-to-end rows (x1 y1 x2 y2 score class) and clips boxes to the image', async () => {
    const out = f32([1, 2, 6], [90, 90, 130, 120, 0.8, 1, 0, 0, 10, 10, 0.1, 0]);
    const { findings } = await (await yoloDecode.init({ scoreThreshold: 0.5 }, ctx())).run(partWith(manifest('end2end'), { output0: out }), ctx());
    expect(findings!.defects).toEqual([{ label: 'pit', score: expect.closeTo(0.8, 5), box: { x: 90, y: 90, w: 10, h: 10 } }]);
  });
});

describe('connected components', () => {
  it('finds 8-connected blobs with their area, box and peak', () => {
    // two blobs: a diagonal pair (8-connected) and a single pixel
    const m = [1, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    const v = m.map((x, i) => x * (i + 1));
    const blobs = connectedComponents(m, v, 4, 4);
    expect(blobs).toEqual([
      { area: 2, x0: 0, y0: 0, x1: 1, y1: 1, max: 6, mean: 3.5 },
      { area: 1, x0: 3, y0: 1, x1: 3, y1: 1, max: 8, mean: 8 },
    ].sort((a, b) => a.x0 - b.x0));
  });
});

describe('core/segment-decode@1', () => {
  it('turns each blob of a defect class into a region with area in px and mm², ignoring the background and specks', async () => {
    const manifest = manifests.segmentation;
    const plane = 100;
    const data = new Float32Array(2 * plane);
    data.fill(1, 0, plane); // background everywhere ...
    for (const [x, y] of [[2, 2], [3, 2], [2, 3], [3, 3], [8, 8]] as const) {
      data[y * 10 + x] = 0.1; // ... except a 2x2 crack and a 1-pixel speck
      data[plane + y * 10 + x] = 0.9;
    }
    const t: Transform = { originX: 0, originY: 0, scaleX: 0.5, scaleY: 0.5, padX: 0, padY: 0, region: { x: 0, y: 0, width: 20, height: 20 } };
    const { findings } = await (await segmentDecode.init(segmentDecode.manifest.config.parse({}), ctx())).run(
      partWith(manifest, { masks: f32([1, 2, 10, 10], data) }, [t]),
      ctx({ calibration: { station: 's', thresholds: {}, provenance: {}, mmPerPixel: 0.1 } }),
    );
    expect(findings!.defects).toHaveLength(1);
    expect(findings!.defects[0]).toMatchObject({ label: 'crack', score: expect.closeTo(0.9, 5), region: { areaPx: 16, areaMm2: 0.16, box: { x: 4, y: 4, w: 4, h: 4 } } });
  });
});

describe('core/anomaly-decode@1', () => {
  const manifest = manifests.anomaly;
  const map = new Float32Array(64).fill(0.2);
  map[9] = 0.9;
  map[10] = 0.7;
  const stage = () => anomalyDecode.init(anomalyDecode.manifest.config.parse({}), ctx());

  it('reports the anomalous regions of an image whose score passes the cut', async () => {
    const { findings } = await (await stage()).run(partWith(manifest, { pred_score: f32([1], [0.8]), anomaly_map: f32([1, 1, 8, 8], map) }, [identity(8, 8)]), ctx());
    expect(findings!.scores.anomaly).toBeCloseTo(0.8, 5);
    expect(findings!.defects).toEqual([{ label: 'anomaly', score: expect.closeTo(0.9, 5), region: { areaPx: 2, box: { x: 1, y: 1, w: 2, h: 1 } }, box: { x: 1, y: 1, w: 2, h: 1 } }]);
  });

  it('reports no defect for an image scored below the cut, whatever its map shows', async () => {
    const { findings } = await (await stage()).run(partWith(manifest, { pred_score: f32([1], [0.3]), anomaly_map: f32([1, 1, 8, 8], map) }, [identity(8, 8)]), ctx());
    expect(findings!.defects).toEqual([]);
    expect(findings!.scores.defect).toBeCloseTo(0.3, 5);
  });
});

describe('core/threshold-rules@1 geometry, calibration and verdicts', () => {
  const rules = (r: unknown[]) => thresholdRules.init(thresholdRules.manifest.config.parse({ rules: r }), ctx());
  const part = (defects: unknown[]): Part => ({ frame: frameOf(), findings: { defects: defects as never, scores: {} } });
  const big = { label: 'crack', score: 0.9, region: { areaPx: 400, areaMm2: 4, box: { x: 10, y: 10, w: 20, h: 20 } } };
  const small = { label: 'crack', score: 0.9, region: { areaPx: 9, areaMm2: 0.09, box: { x: 80, y: 80, w: 3, h: 3 } } };

  it('lets defects below the minimum area pass, in px and in mm²', async () => {
    for (const rule of [{ label: 'crack', minAreaPx: 50, rejectCode: 3 }, { label: 'crack', minAreaMm2: 1, rejectCode: 3 }]) {
      const stage = await rules([rule]);
      expect((await stage.run(part([small]), ctx())).decision!.verdict).toBe('pass');
      expect((await stage.run(part([small, big]), ctx())).decision!.verdict).toBe('fail');
    }
  });

  it('counts only defects centred inside an include polygon and never those in an exclude polygon', async () => {
    const left = [[0, 0], [50, 0], [50, 100], [0, 100]];
    const inc = await rules([{ label: 'crack', include: [left], rejectCode: 3 }]);
    expect((await inc.run(part([small]), ctx())).decision!.verdict).toBe('pass');
    expect((await inc.run(part([big]), ctx())).decision!.verdict).toBe('fail');
    const exc = await rules([{ label: 'crack', exclude: [left], rejectCode: 3 }]);
    expect((await exc.run(part([big]), ctx())).decision!.verdict).toBe('pass');
  });

  it('takes the threshold from calibration over the rule, and says so in the reason', async () => {
    const stage = await rules([{ label: 'crack', minScore: 0.95, rejectCode: 3 }]);
    expect((await stage.run(part([big]), ctx())).decision!.verdict).toBe('pass');
    const d = (await stage.run(part([big]), ctx({ calibration: { station: 's', thresholds: { crack: 0.8 }, provenance: {} } }))).decision!;
    expect(d.verdict).toBe('fail');
    expect(d.reasons[0]!.message).toContain('>= 0.8 (calibration');
  });

  it("gives an error verdict with that rule's code when an error rule fires, even after a fail rule", async () => {
    const stage = await rules([
      { label: 'crack', rejectCode: 3 },
      { label: 'blurred', minScore: 0.2, verdict: 'error', rejectCode: 40 },
    ]);
    const d = (await stage.run(part([big, { label: 'blurred', score: 0.5 }]), ctx())).decision!;
    expect(d).toMatchObject({ verdict: 'error', rejectCode: 40 });
    expect(d.reasons.map((r) => r.code)).toEqual(['reject-crack', 'reject-blurred']);
  });
});
