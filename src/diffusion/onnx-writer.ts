/**
 * Just enough of ONNX's protobuf encoding to write small models from TypeScript: graphs of
 * standard operators with float/int32/int64 initializers. Used for test fixtures (the tiny
 * diffusion model), so no Python or `onnx` package is needed to build them.
 * Field numbers are those of onnx/onnx.proto (IR version 8).
 * @module
 */

export const DataType = { FLOAT: 1, INT32: 6, INT64: 7 } as const;
export type DataTypeCode = (typeof DataType)[keyof typeof DataType];

function varint(value: number | bigint): Buffer {
  // Negative int64 values are encoded as their 64-bit two's complement.
  let v = BigInt.asUintN(64, BigInt(value));
  const out: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return Buffer.from(out);
}

const key = (field: number, wire: number): Buffer => varint((field << 3) | wire);
const int = (field: number, value: number | bigint): Buffer => Buffer.concat([key(field, 0), varint(value)]);
const bytes = (field: number, value: Buffer): Buffer => Buffer.concat([key(field, 2), varint(value.length), value]);
const str = (field: number, value: string): Buffer => bytes(field, Buffer.from(value, "utf8"));
const float = (field: number, value: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeFloatLE(value);
  return Buffer.concat([key(field, 5), b]);
};

export interface Tensor {
  name: string;
  type: DataTypeCode;
  dims: number[];
  /** Values in row-major order. */
  values: ArrayLike<number>;
}

function tensorProto(t: Tensor): Buffer {
  const count = t.dims.reduce((a, b) => a * b, 1);
  if (t.values.length !== count) throw new Error(`${t.name}: ${t.values.length} values for dims ${t.dims.join("x")}`);
  const width = t.type === DataType.INT64 ? 8 : 4;
  const raw = Buffer.alloc(count * width);
  for (let i = 0; i < count; i++) {
    const v = t.values[i] ?? 0;
    if (t.type === DataType.FLOAT) raw.writeFloatLE(v, i * 4);
    else if (t.type === DataType.INT32) raw.writeInt32LE(v, i * 4);
    else raw.writeBigInt64LE(BigInt(v), i * 8);
  }
  return Buffer.concat([...t.dims.map((d) => int(1, d)), int(2, t.type), str(8, t.name), bytes(9, raw)]);
}

export type Attribute = { name: string; ints: number[] } | { name: string; int: number } | { name: string; float: number } | { name: string; string: string } | { name: string; tensor: Tensor };

function attributeProto(a: Attribute): Buffer {
  // AttributeProto.type: FLOAT 1, INT 2, STRING 3, TENSOR 4, INTS 7.
  if ("ints" in a) return Buffer.concat([str(1, a.name), ...a.ints.map((v) => int(8, v)), int(20, 7)]);
  if ("int" in a) return Buffer.concat([str(1, a.name), int(3, a.int), int(20, 2)]);
  if ("float" in a) return Buffer.concat([str(1, a.name), float(2, a.float), int(20, 1)]);
  if ("string" in a) return Buffer.concat([str(1, a.name), bytes(4, Buffer.from(a.string)), int(20, 3)]);
  return Buffer.concat([str(1, a.name), bytes(5, tensorProto(a.tensor)), int(20, 4)]);
}

export interface Node {
  op: string;
  inputs: string[];
  outputs: string[];
  attributes?: Attribute[];
}

export interface ValueInfo {
  name: string;
  type: DataTypeCode;
  /** A number for a fixed size, a string for a named dynamic one (`batch`). */
  shape: (number | string)[];
}

function valueInfoProto(v: ValueInfo): Buffer {
  const dims = v.shape.map((d) => bytes(1, typeof d === "number" ? int(1, d) : str(2, d)));
  const shape = bytes(2, Buffer.concat(dims));
  const tensorType = bytes(1, Buffer.concat([int(1, v.type), shape]));
  return Buffer.concat([str(1, v.name), bytes(2, tensorType)]);
}

export interface Graph {
  name: string;
  nodes: Node[];
  initializers: Tensor[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
}

/** A serialized ModelProto (IR 8, default-domain opset `opset`). */
export function encodeModel(graph: Graph, options: { opset?: number; producer?: string } = {}): Buffer {
  const nodes = graph.nodes.map((n, i) =>
    bytes(1, Buffer.concat([...n.inputs.map((x) => str(1, x)), ...n.outputs.map((x) => str(2, x)), str(3, `${n.op}_${i}`), str(4, n.op), ...(n.attributes ?? []).map((a) => bytes(5, attributeProto(a)))])),
  );
  const g = Buffer.concat([
    ...nodes,
    str(2, graph.name),
    ...graph.initializers.map((t) => bytes(5, tensorProto(t))),
    ...graph.inputs.map((v) => bytes(11, valueInfoProto(v))),
    ...graph.outputs.map((v) => bytes(12, valueInfoProto(v))),
  ]);
  const opset = bytes(8, Buffer.concat([str(1, ""), int(2, options.opset ?? 17)]));
  return Buffer.concat([int(1, 8), str(2, options.producer ?? "darkroom"), bytes(7, g), opset]);
}
