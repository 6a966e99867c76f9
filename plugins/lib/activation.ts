/** Softmax over `n` values at `data[offset + i * stride]`, written into `out`. Numerically stable (max subtracted). */
export function softmax(data: ArrayLike<number>, offset: number, n: number, stride: number, out: Float64Array): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < n; i++) max = Math.max(max, data[offset + i * stride]!);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const e = Math.exp(data[offset + i * stride]! - max);
    out[i] = e;
    sum += e;
  }
  for (let i = 0; i < n; i++) out[i]! /= sum;
  return out;
}

export const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

/** Probabilities for `n` class values, by the activation the model manifest names. */
export function activate(kind: 'softmax' | 'sigmoid' | 'none', data: ArrayLike<number>, offset: number, n: number, stride: number, out: Float64Array): Float64Array {
  if (kind === 'softmax') return softmax(data, offset, n, stride, out);
  for (let i = 0; i < n; i++) {
    const v = data[offset + i * stride]!;
    out[i] = kind === 'sigmoid' ? sigmoid(v) : v;
  }
  return out;
}
