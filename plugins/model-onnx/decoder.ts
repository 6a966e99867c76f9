import type { Findings, Part, PluginContext, StageInstance } from '../../runtime/contract.js';
import { LinegateError, messageOf } from '../../runtime/errors.js';
import type { DecodeSpec } from './manifest.js';
import { modelMetaOf, type ModelMeta } from './meta.js';

type Spec<K extends DecodeSpec['kind']> = Extract<DecodeSpec, { kind: K }>;

/**
 * The run of a decoder stage: finds the model step's output and manifest on
 * the part, checks the model is of the kind this decoder reads, and turns
 * anything that goes wrong while decoding into LG_ERR_MODEL_DECODE naming the
 * model (a decoder never lets a malformed output pass as "no defect").
 */
export function decoderRun<K extends DecodeSpec['kind']>(
  kind: K,
  decode: (part: Part, meta: ModelMeta, spec: Spec<K>, ctx: PluginContext) => Findings,
): StageInstance['run'] {
  return async (part, ctx) => {
    ctx.signal.throwIfAborted();
    const meta = modelMetaOf(part);
    const { manifest } = meta;
    if (manifest.decode.kind !== kind) throw new Error(`model ${manifest.name} is a ${manifest.task} model, not one this decoder reads`);
    try {
      return { findings: decode(part, meta, manifest.decode as Spec<K>, ctx) };
    } catch (e) {
      throw new LinegateError('LG_ERR_MODEL_DECODE', [manifest.name, messageOf(e)], { step: ctx.step, cause: e });
    }
  };
}
