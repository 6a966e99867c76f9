import { folderSource } from '../../plugins/source-folder/index.js';
import { hotFolderSource } from '../../plugins/source-hot-folder/index.js';
import { imageDecode } from '../../plugins/preprocess-image-decode/index.js';
import { imageQuality } from '../../plugins/postprocess-image-quality/index.js';
import { thresholdRules } from '../../plugins/decision-threshold-rules/index.js';
import { jsonlSink } from '../../plugins/sink-jsonl/index.js';
import { bullmqSink } from '../../plugins/sink-bullmq/index.js';
import { onnxModel } from '../../plugins/model-onnx/index.js';
import { classifyDecode } from '../../plugins/postprocess-classify-decode/index.js';
import { yoloDecode } from '../../plugins/postprocess-yolo-decode/index.js';
import { segmentDecode } from '../../plugins/postprocess-segment-decode/index.js';
import { anomalyDecode } from '../../plugins/postprocess-anomaly-decode/index.js';
import { opcuaPlc, opcuaTrigger } from '../../plugins/opcua-plc/index.js';
import { historySink } from '../../plugins/history-sqlite/index.js';
import { httpSource } from '../../plugins/source-http/index.js';
import type { HistoryReader } from '../history.js';
import { Registry } from './registry.js';

/** The built-in plugins: an explicit list, so what ships is what a reader sees here. */
export const BUILTIN_PLUGINS = [
  folderSource,
  hotFolderSource,
  httpSource,
  opcuaTrigger,
  imageDecode,
  onnxModel,
  classifyDecode,
  yoloDecode,
  segmentDecode,
  anomalyDecode,
  imageQuality,
  thresholdRules,
  jsonlSink,
  bullmqSink,
  opcuaPlc,
  historySink,
] as const;

export function builtinRegistry(): Registry {
  const registry = new Registry();
  for (const plugin of BUILTIN_PLUGINS) registry.register(plugin, 'builtin');
  return registry;
}

/**
 * Opens a station's history file for reading (`linegate history`, the HTTP API; the file from
 * `historyFileOf(plan)`). better-sqlite3 loads only when it is called.
 */
export async function historyReaderFactory(file: string): Promise<HistoryReader> {
  return (await import('../../plugins/history-sqlite/reader.js')).openHistoryReader(file);
}
