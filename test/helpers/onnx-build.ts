import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/*
 * A protobuf writer just large enough to build real ONNX files byte by byte
 * (opset 13, float tensors, INT / INTS attributes, float initializers), so a
 * test can have a model whose graph it knows exactly without Python.
 */

const varint = (n: number | bigint): number[] => {
  let v = BigInt.asUintN(64, BigInt(n));
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) b |= 0x80;
    out.push(b);
  } while (v !== 0n);
  return out;
};
const tag = (field: number, wire: number): number[] => varint((field << 3) | wire);
const vf = (field: number, n: number | bigint): number[] => [...tag(field, 0), ...varint(n)];
const lf = (field: number, payload: string | number[]): number[] => {
  const b = typeof payload === 'string' ? [...Buffer.from(payload, 'utf8')] : payload;
  return [...tag(field, 2), ...varint(b.length), ...b];
};

export type Dims = readonly (number | string)[];
const FLOAT = 1;

/** ValueInfoProto { name, type { tensor_type { elem_type FLOAT, shape { dim* } } } } */
const valueInfo = (name: string, dims: Dims): number[] => [
  ...lf(1, name),
  ...lf(2, lf(1, [...vf(1, FLOAT), ...lf(2, dims.flatMap((d) => lf(1, typeof d === 'number' ? vf(1, d) : lf(2, d))))])),
];

/** NodeProto with INT / INTS attributes. */
export const node = (op: string, inputs: string[], outputs: string[], attrs: Record<string, number | number[]> = {}): number[] => [
  ...inputs.flatMap((i) => lf(1, i)),
  ...outputs.flatMap((o) => lf(2, o)),
  ...lf(3, `${op}_${outputs[0]}`),
  ...lf(4, op),
  ...Object.entries(attrs).flatMap(([k, v]) => lf(5, [...lf(1, k), ...(Array.isArray(v) ? [...v.flatMap((x) => vf(8, x)), ...vf(20, 7)] : [...vf(3, v), ...vf(20, 2)])])),
];

/** TensorProto { dims, data_type FLOAT, float_data (packed), name }. */
const initializer = (name: string, dims: readonly number[], values: readonly number[]): number[] => {
  const floats = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => floats.writeFloatLE(v, i * 4));
  return [...dims.flatMap((d) => vf(1, d)), ...vf(2, FLOAT), ...lf(4, [...floats]), ...lf(8, name)];
};

export interface Graph {
  readonly inputs: [string, Dims][];
  readonly outputs: [string, Dims][];
  readonly nodes: number[][];
  readonly initializers?: { name: string; dims: number[]; values: number[] }[];
  readonly metadata?: Record<string, string>;
}

/** Writes a real ONNX file onnxruntime can load (IR 8, opset 13) at dir/name and returns its path. */
export function onnxFile(dir: string, name: string, g: Graph): string {
  const graph = [
    ...g.nodes.flatMap((n) => lf(1, n)),
    ...lf(2, 'g'),
    ...(g.initializers ?? []).flatMap((t) => lf(5, initializer(t.name, t.dims, t.values))),
    ...g.inputs.flatMap(([n, d]) => lf(11, valueInfo(n, d))),
    ...g.outputs.flatMap(([n, d]) => lf(12, valueInfo(n, d))),
  ];
  const model = [
    ...vf(1, 8),
    ...lf(2, 'linegate-test'),
    ...lf(3, '0.1'),
    ...lf(7, graph),
    ...lf(8, [...lf(1, ''), ...vf(2, 13)]),
    ...Object.entries(g.metadata ?? {}).flatMap(([k, v]) => lf(14, [...lf(1, k), ...lf(2, v)])),
  ];
  const file = path.join(dir, name);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, Buffer.from(model));
  return file;
}
