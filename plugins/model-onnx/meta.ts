import { modelOutputCaps, type Caps, type InputTransform, type ModelOutput, type Tensor } from '../../runtime/contract.js';
import type { ModelManifest } from './manifest.js';

// The decoders read the model-output contract (runtime/model-output.ts), never model.json: this file is
// where a package's manifest becomes that contract. Assigning `manifest.decode` to the contract's DecodeSpec
// below is also the compile-time check that model.json's decode schema and the contract have not drifted.

/** The identity, labels, decode spec and thresholds of a package: the parts of its model output that never change. */
export type ModelConstants = Omit<ModelOutput, 'tensors' | 'transforms' | 'source'>;

export function modelConstants(manifest: ModelManifest): ModelConstants {
  return Object.freeze({
    model: Object.freeze({ name: manifest.name, version: manifest.version, sha256: manifest.sha256 }),
    task: manifest.task,
    labels: manifest.labels,
    decode: manifest.decode,
    thresholds: manifest.thresholds,
  });
}

/** One part's model output: the package's constants with this run's tensors and per-item transforms. */
export function modelOutput(
  constants: ModelConstants,
  tensors: Readonly<Record<string, Tensor>>,
  transforms: readonly InputTransform[],
  source: { readonly width: number; readonly height: number },
): ModelOutput {
  return { ...constants, tensors, transforms, source };
}

/** The caps a loaded package produces: its task and decode kind, for the decoder after it to accept. */
export const capsOfModel = (manifest: ModelManifest): Caps => modelOutputCaps(manifest.task, manifest.decode.kind);

// The preprocessing tests check where boxes land with the very mapping the decoders use.
export { boxToSource } from '../../runtime/contract.js';
