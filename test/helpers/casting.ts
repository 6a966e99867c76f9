/**
 * The casting classifier's stages as the shipped stations run them (decode to grey, casting-cls,
 * classify, one reject rule): the one pipeline many tests and benches put behind a source.
 */
export function castingStages(model = 'models/casting-cls/1', modelConfig: Record<string, unknown> = {}): unknown[] {
  return [
    { name: 'decode', use: 'core/image-decode@1', config: { color: 'GRAY' } },
    { name: 'model', use: 'core/onnx-model@1', config: { model, ...modelConfig } },
    { name: 'classify', use: 'core/classify-decode@1' },
    { name: 'verdict', use: 'core/threshold-rules@1', config: { rules: [{ id: 'casting-defect', label: 'defect', rejectCode: 1 }] } },
  ];
}
