import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

/**
 * A minimal reader for the top level of an ONNX `ModelProto` (onnx.proto3):
 * the fields a person inspecting a model wants, without a protobuf dependency
 * and without loading the graph. Field 7 (the graph, nearly all of the file)
 * and every unknown field are skipped by wire type; `readGraphNodes` walks
 * only the graph's nodes (op types and tensor names), skipping the weights.
 *
 *   1 ir_version int64          5 model_version int64
 *   2 producer_name string      6 doc_string string
 *   3 producer_version string   8 opset_import repeated OperatorSetIdProto {1 domain, 2 version}
 *   4 domain string            14 metadata_props repeated StringStringEntryProto {1 key, 2 value}
 */

export interface OpsetImport {
  /** '' (or 'ai.onnx') is the default ONNX operator set. */
  readonly domain: string;
  readonly version: number;
}

export interface MetadataProp {
  readonly key: string;
  readonly value: string;
}

export interface OnnxModelInfo {
  readonly irVersion: number;
  readonly producerName: string;
  readonly producerVersion: string;
  readonly domain: string;
  readonly modelVersion: number;
  readonly docString: string;
  readonly opsetImports: readonly OpsetImport[];
  /** In file order; keys may repeat in a malformed file (then the last one wins in `metadataOf`). */
  readonly metadataProps: readonly MetadataProp[];
  /** Size in bytes of the graph field (7); 0 when the file has none. */
  readonly graphBytes: number;
}

/** Random access to bytes, so the graph can be skipped without being read. */
interface ByteSource {
  readonly size: number;
  /** Exactly `length` bytes at `pos` (the caller keeps within `size`). */
  read(pos: number, length: number): Uint8Array;
}

const WIRE = { varint: 0, fixed64: 1, len: 2, fixed32: 5 } as const;
const MAX_VARINT_BYTES = 10;
const utf8 = new TextDecoder('utf-8', { fatal: true });

class ProtoError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtoError';
  }
}

/** A protobuf cursor over [pos, end) of a source. */
class Cursor {
  constructor(
    private readonly src: ByteSource,
    public pos: number,
    private readonly end: number,
    private readonly what: string,
  ) {}

  get done(): boolean {
    return this.pos >= this.end;
  }

  varint(): bigint {
    const start = this.pos;
    const avail = Math.min(MAX_VARINT_BYTES, this.end - this.pos);
    const bytes = this.src.read(this.pos, avail);
    let v = 0n;
    for (let i = 0; i < avail; i++) {
      const b = bytes[i]!;
      v |= BigInt(b & 0x7f) << BigInt(7 * i);
      if ((b & 0x80) === 0) {
        if (i === MAX_VARINT_BYTES - 1 && b > 1) throw new ProtoError(`${this.what}: varint at byte ${start} overflows 64 bits`);
        this.pos += i + 1;
        return v;
      }
    }
    if (avail < MAX_VARINT_BYTES) throw new ProtoError(`${this.what}: truncated varint at byte ${start} (the data ends at byte ${this.end})`);
    throw new ProtoError(`${this.what}: varint at byte ${start} is longer than ${MAX_VARINT_BYTES} bytes`);
  }

  /** A varint used as a length or a count: must be a safe, non-negative number. */
  length(): number {
    const start = this.pos;
    const v = this.varint();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ProtoError(`${this.what}: length ${v} at byte ${start} is not plausible`);
    return Number(v);
  }

  /** An int64 field value; two's complement for negatives, as protobuf encodes them. */
  int64(): number {
    return Number(BigInt.asIntN(64, this.varint()));
  }

  /** A tag: field number and wire type. */
  tag(): { field: number; wire: number; at: number } {
    const at = this.pos;
    const t = this.varint();
    const field = Number(t >> 3n);
    const wire = Number(t & 7n);
    if (field === 0 || t >> 3n > 0x1fffffffn) throw new ProtoError(`${this.what}: invalid field number ${t >> 3n} at byte ${at}`);
    return { field, wire, at };
  }

  /** Start and length of a length-delimited payload, checked against the end. */
  delimited(field: number): { start: number; length: number } {
    const at = this.pos;
    const length = this.length();
    const start = this.pos;
    if (length > this.end - start) {
      throw new ProtoError(`${this.what}: truncated: field ${field} at byte ${at} claims ${length} bytes but only ${this.end - start} remain`);
    }
    this.pos = start + length;
    return { start, length };
  }

  string(field: number): string {
    const { start, length } = this.delimited(field);
    try {
      return utf8.decode(this.src.read(start, length));
    } catch {
      throw new ProtoError(`${this.what}: field ${field} at byte ${start} is not valid UTF-8 text`);
    }
  }

  sub(field: number, what: string): Cursor {
    const { start, length } = this.delimited(field);
    return new Cursor(this.src, start, start + length, what);
  }

  skip(field: number, wire: number, at: number): void {
    const fixed = (n: number): void => {
      if (this.end - this.pos < n) throw new ProtoError(`${this.what}: truncated: field ${field} at byte ${at} needs ${n} bytes but only ${this.end - this.pos} remain`);
      this.pos += n;
    };
    switch (wire) {
      case WIRE.varint:
        this.varint();
        return;
      case WIRE.fixed64:
        fixed(8);
        return;
      case WIRE.len:
        this.delimited(field);
        return;
      case WIRE.fixed32:
        fixed(4);
        return;
      default:
        throw new ProtoError(`${this.what}: field ${field} at byte ${at} has wire type ${wire}, which ONNX never uses (not an ONNX protobuf?)`);
    }
  }

  expect(field: number, wire: number, want: number, at: number): void {
    if (wire !== want) throw new ProtoError(`${this.what}: field ${field} at byte ${at} has wire type ${wire}, expected ${want}`);
  }
}

function parseOpset(c: Cursor): OpsetImport {
  let domain = '';
  let version = 0;
  while (!c.done) {
    const { field, wire, at } = c.tag();
    if (field === 1 && wire === WIRE.len) domain = c.string(field);
    else if (field === 2 && wire === WIRE.varint) version = c.int64();
    else c.skip(field, wire, at);
  }
  return { domain, version };
}

function parseEntry(c: Cursor): MetadataProp {
  let key = '';
  let value = '';
  while (!c.done) {
    const { field, wire, at } = c.tag();
    if (field === 1 && wire === WIRE.len) key = c.string(field);
    else if (field === 2 && wire === WIRE.len) value = c.string(field);
    else c.skip(field, wire, at);
  }
  return { key, value };
}

function parseTop(src: ByteSource): OnnxModelInfo {
  const c = new Cursor(src, 0, src.size, 'ModelProto');
  let irVersion = 0;
  let producerName = '';
  let producerVersion = '';
  let domain = '';
  let modelVersion = 0;
  let docString = '';
  let graphBytes = 0;
  const opsetImports: OpsetImport[] = [];
  const metadataProps: MetadataProp[] = [];
  if (src.size === 0) throw new ProtoError('ModelProto: the file is empty');
  while (!c.done) {
    const { field, wire, at } = c.tag();
    switch (field) {
      case 1:
        c.expect(field, wire, WIRE.varint, at);
        irVersion = c.int64();
        break;
      case 2:
        c.expect(field, wire, WIRE.len, at);
        producerName = c.string(field);
        break;
      case 3:
        c.expect(field, wire, WIRE.len, at);
        producerVersion = c.string(field);
        break;
      case 4:
        c.expect(field, wire, WIRE.len, at);
        domain = c.string(field);
        break;
      case 5:
        c.expect(field, wire, WIRE.varint, at);
        modelVersion = c.int64();
        break;
      case 6:
        c.expect(field, wire, WIRE.len, at);
        docString = c.string(field);
        break;
      case 7:
        c.expect(field, wire, WIRE.len, at);
        graphBytes += c.delimited(field).length;
        break;
      case 8:
        c.expect(field, wire, WIRE.len, at);
        opsetImports.push(parseOpset(c.sub(field, 'OperatorSetIdProto')));
        break;
      case 14:
        c.expect(field, wire, WIRE.len, at);
        metadataProps.push(parseEntry(c.sub(field, 'StringStringEntryProto')));
        break;
      default:
        c.skip(field, wire, at);
    }
  }
  return { irVersion, producerName, producerVersion, domain, modelVersion, docString, opsetImports, metadataProps, graphBytes };
}

/** Parses the top level of a serialised ModelProto; throws an Error naming the byte on truncated or invalid data. */
export function parseModelProto(bytes: Uint8Array): OnnxModelInfo {
  return parseTop({ size: bytes.length, read: (pos, length) => bytes.subarray(pos, pos + length) });
}

/**
 * Reads the top level of an ONNX file: only the bytes of the small fields are
 * read, the graph is skipped by seeking, so a model of any size costs a few
 * small reads. Errors from fs (ENOENT, EACCES) are thrown as they are.
 */
export function readOnnxModelInfo(file: string): OnnxModelInfo {
  return withFile(file, parseTop);
}

/** Parses an open file through random reads, so that skipped fields (weights) are never read. */
function withFile<T>(file: string, parse: (src: ByteSource) => T): T {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const read = (pos: number, length: number): Uint8Array => {
      const buf = Buffer.allocUnsafe(length);
      let got = 0;
      while (got < length) {
        const n = readSync(fd, buf, got, length - got, pos + got);
        if (n === 0) throw new ProtoError(`ModelProto: the file ended at byte ${pos + got} while reading (was it changed while being read?)`);
        got += n;
      }
      return buf;
    };
    return parse({ size, read });
  } finally {
    closeSync(fd);
  }
}

/** A node of the main graph, as far as `models inspect` needs it: what it computes and from what. */
export interface GraphNode {
  readonly opType: string;
  /** '' (or 'ai.onnx') for the default operator set. */
  readonly domain: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
}

/** NodeProto: 1 input, 2 output, 4 op_type, 7 domain; attributes (5), which can hold whole tensors, are skipped unread. */
function parseNode(c: Cursor): GraphNode {
  let opType = '';
  let domain = '';
  const inputs: string[] = [];
  const outputs: string[] = [];
  while (!c.done) {
    const { field, wire, at } = c.tag();
    if (field === 1 && wire === WIRE.len) inputs.push(c.string(field));
    else if (field === 2 && wire === WIRE.len) outputs.push(c.string(field));
    else if (field === 4 && wire === WIRE.len) opType = c.string(field);
    else if (field === 7 && wire === WIRE.len) domain = c.string(field);
    else c.skip(field, wire, at);
  }
  return { opType, domain, inputs, outputs };
}

/** The nodes of ModelProto.graph (7) -> GraphProto.node (1); initializers and every other field are skipped by length. */
function parseNodes(src: ByteSource): GraphNode[] {
  const top = new Cursor(src, 0, src.size, 'ModelProto');
  const nodes: GraphNode[] = [];
  if (src.size === 0) throw new ProtoError('ModelProto: the file is empty');
  while (!top.done) {
    const { field, wire, at } = top.tag();
    if (field !== 7 || wire !== WIRE.len) {
      top.skip(field, wire, at);
      continue;
    }
    const g = top.sub(field, 'GraphProto');
    while (!g.done) {
      const t = g.tag();
      if (t.field === 1 && t.wire === WIRE.len) nodes.push(parseNode(g.sub(t.field, 'NodeProto')));
      else g.skip(t.field, t.wire, t.at);
    }
  }
  return nodes;
}

/** The main graph's nodes of a serialised ModelProto (not those of subgraphs inside If or Loop). */
export function parseGraphNodes(bytes: Uint8Array): GraphNode[] {
  return parseNodes({ size: bytes.length, read: (pos, length) => bytes.subarray(pos, pos + length) });
}

/**
 * The main graph's nodes of an ONNX file. Weights are skipped by seeking, so
 * the cost is a few small reads per node, whatever the size of the model.
 */
export function readGraphNodes(file: string): GraphNode[] {
  return withFile(file, parseNodes);
}

/** Ops that move or reshape values without changing them: what comes out is still what went in. */
const PASS_THROUGH = new Set(['Identity', 'Reshape', 'Flatten', 'Squeeze', 'Unsqueeze', 'Transpose', 'Cast']);

/**
 * For each graph output, the op that computed its values (looking through
 * reshapes and identities, so `Softmax -> Flatten -> probs` is a Softmax);
 * absent when the output is a graph input or no node makes it.
 */
export function outputOps(nodes: readonly GraphNode[], outputs: readonly string[]): Record<string, string> {
  const producer = new Map<string, GraphNode>();
  for (const n of nodes) for (const o of n.outputs) if (o !== '') producer.set(o, n);
  const result: Record<string, string> = {};
  for (const name of outputs) {
    let n = producer.get(name);
    // Bounded: a malformed graph with a cycle must not hang inspect.
    for (let hops = 0; n !== undefined && PASS_THROUGH.has(n.opType) && (n.domain === '' || n.domain === 'ai.onnx') && hops < nodes.length; hops++) {
      n = n.inputs[0] === undefined ? undefined : producer.get(n.inputs[0]);
    }
    if (n !== undefined) result[name] = n.domain === '' || n.domain === 'ai.onnx' ? n.opType : `${n.domain}.${n.opType}`;
  }
  return result;
}

export const isProtoError = (e: unknown): boolean => e instanceof ProtoError;

/** metadata_props as a record (the last value wins for a repeated key). */
export function metadataOf(info: OnnxModelInfo): Record<string, string> {
  // fromEntries makes own properties even for a key like "__proto__".
  return Object.fromEntries(info.metadataProps.map(({ key, value }) => [key, value]));
}
