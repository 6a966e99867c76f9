import type { DecodeKind, DecodeSpec, Findings, ModelOutput, PluginContext, StageInstance } from '../../runtime/contract.js';
import { modelOutputOf } from '../../runtime/contract.js';
import { LinegateError, messageOf } from '../../runtime/errors.js';

type Spec<K extends DecodeKind> = Extract<DecodeSpec, { kind: K }>;

/**
 * The run of a decoder stage: finds the model output on the part (from any
 * model plugin), checks its decode spec is of the kind this decoder reads, and
 * turns anything that goes wrong while decoding into LG_ERR_MODEL_DECODE naming
 * the model (a decoder never lets a malformed output pass as "no defect").
 */
export function decoderRun<K extends DecodeKind>(kind: K, decode: (output: ModelOutput, spec: Spec<K>, ctx: PluginContext) => Findings): StageInstance['run'] {
  return async (part, ctx) => {
    ctx.signal.throwIfAborted();
    const output = modelOutputOf(part);
    if (output.decode.kind !== kind) throw new Error(`model ${output.model.name} is a ${output.task} model, not one this decoder reads`);
    try {
      return { findings: decode(output, output.decode as Spec<K>, ctx) };
    } catch (e) {
      throw new LinegateError('LG_ERR_MODEL_DECODE', [output.model.name, messageOf(e)], { step: ctx.step, cause: e });
    }
  };
}
