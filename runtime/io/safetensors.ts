// The safetensors checkpoint format (https://huggingface.co/docs/safetensors):
//   8 bytes   N, the header length, unsigned 64-bit little-endian
//   N bytes   a JSON object {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?:
//             {string: string}}, padded with spaces so the data starts 8-byte aligned
//   rest      the tensor bytes, little-endian, row-major; offsets are relative to the data start
//             and the tensors cover the data exactly (no gaps, no overlap).
// We write F32 only. We read F32, F16 and BF16 exactly, and also F64 and integer/bool dtypes
// (converted to float32) so PyTorch state dicts with `num_batches_tracked` (I64) load.

import { Tensor } from "../tensor.ts";
import { writeFileAtomic } from "./atomic.ts";

export interface CpuTensor {
  shape: number[];
  data: Float32Array;
}

export type Metadata = Record<string, string>;

const ITEM_SIZE: Record<string, number> = {
  F32: 4,
  F16: 2,
  BF16: 2,
  F64: 8,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};
const SUPPORTED = Object.keys(ITEM_SIZE).join(", ");
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const METADATA_KEY = "__metadata__";

function fail(msg: string): never {
  throw new Error(`safetensors: ${msg}`);
}

// ---------------------------------------------------------------------------------------------
// Encoding

/** Serialises float32 tensors (in the given order) and optional string metadata. */
export function encodeSafetensors(
  tensors: Record<string, CpuTensor> | Map<string, CpuTensor>,
  metadata?: Metadata,
): Uint8Array {
  const entries = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") {
        fail(`metadata "${k}" must be a string (got ${typeof v}); JSON.stringify it first`);
      }
    }
    header[METADATA_KEY] = metadata;
  }
  let offset = 0;
  for (const [name, t] of entries) {
    if (name === METADATA_KEY) fail(`"${METADATA_KEY}" is reserved and cannot name a tensor`);
    const shape = [...t.shape];
    const n = shape.reduce((a, d) => {
      if (!Number.isInteger(d) || d < 0) fail(`tensor "${name}": bad shape [${shape}]`);
      return a * d;
    }, 1);
    if (!(t.data instanceof Float32Array)) fail(`tensor "${name}": data must be a Float32Array`);
    if (t.data.length !== n) {
      fail(`tensor "${name}": shape [${shape}] needs ${n} values, data has ${t.data.length}`);
    }
    header[name] = { dtype: "F32", shape, data_offsets: [offset, offset + n * 4] };
    offset += n * 4;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.length + offset);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let o = 8 + json.length;
  for (const [, t] of entries) {
    if (LITTLE_ENDIAN) {
      out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.length * 4), o);
    } else {
      for (let i = 0; i < t.data.length; i++) dv.setFloat32(o + 4 * i, t.data[i], true);
    }
    o += t.data.length * 4;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Decoding

let f16Table: Float32Array | null = null;

/** Exact IEEE half -> float32 (subnormals, infinities, NaN), one table for all 65536 codes. */
function halfTable(): Float32Array {
  if (f16Table) return f16Table;
  f16Table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const mant = h & 0x3ff;
    let v: number;
    if (exp === 0) v = mant * 2 ** -24; // zero and subnormals
    else if (exp === 31) v = mant ? NaN : Infinity;
    else v = (1 + mant / 1024) * 2 ** (exp - 15);
    f16Table[h] = sign * v;
  }
  return f16Table;
}

/** Converts `n` little-endian elements of `dtype` starting at `bytes[0]` to float32. */
function convert(dtype: string, bytes: Uint8Array, n: number): Float32Array {
  // Copy into a fresh, aligned buffer: the file offsets need not be aligned.
  const own = bytes.slice();
  const dv = new DataView(own.buffer);
  const out = new Float32Array(n);
  switch (dtype) {
    case "F32":
      if (LITTLE_ENDIAN) return new Float32Array(own.buffer, 0, n);
      for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
      return out;
    case "F16": {
      const table = halfTable();
      for (let i = 0; i < n; i++) out[i] = table[dv.getUint16(2 * i, true)];
      return out;
    }
    case "BF16": {
      // bfloat16 is the top half of a float32: exact by construction.
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = dv.getUint16(2 * i, true) << 16;
      return out;
    }
    case "F64":
      for (let i = 0; i < n; i++) out[i] = dv.getFloat64(8 * i, true);
      return out;
    case "I64":
      for (let i = 0; i < n; i++) out[i] = Number(dv.getBigInt64(8 * i, true));
      return out;
    case "I32":
      for (let i = 0; i < n; i++) out[i] = dv.getInt32(4 * i, true);
      return out;
    case "I16":
      for (let i = 0; i < n; i++) out[i] = dv.getInt16(2 * i, true);
      return out;
    case "I8":
      for (let i = 0; i < n; i++) out[i] = dv.getInt8(i);
      return out;
    case "U8":
    case "BOOL":
      for (let i = 0; i < n; i++) out[i] = own[i];
      return out;
  }
  fail(`unsupported dtype ${dtype}`);
}

interface HeaderEntry {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

/** Parses and validates the header; returns entries and metadata plus the data start. */
function parseHeader(bytes: Uint8Array) {
  if (bytes.length < 8) {
    fail(`file is ${bytes.length} bytes, too short for the 8-byte header length (truncated?)`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n64 = dv.getBigUint64(0, true);
  if (n64 > BigInt(bytes.length - 8)) {
    fail(
      `header length ${n64} is beyond the end of the file (${bytes.length} bytes, so at most ` +
        `${bytes.length - 8}); the file is truncated or not safetensors`,
    );
  }
  const n = Number(n64);
  let header: unknown;
  try {
    const text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n));
    header = JSON.parse(text);
  } catch (e) {
    fail(`header (${n} bytes) is not valid UTF-8 JSON: ${e instanceof Error ? e.message : e}`);
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) {
    fail(`header must be a JSON object`);
  }
  const dataStart = 8 + n;
  const dataLen = bytes.length - dataStart;
  let metadata: Metadata | null = null;
  const entries: HeaderEntry[] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === METADATA_KEY) {
      if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
        fail(`${METADATA_KEY} must be an object of strings`);
      }
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== "string") fail(`${METADATA_KEY}["${k}"] must be a string`);
      }
      metadata = raw as Metadata;
      continue;
    }
    const info = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (info === null || typeof info !== "object") fail(`tensor "${name}": entry is not an object`);
    const { dtype, shape, data_offsets: offs } = info;
    if (typeof dtype !== "string") fail(`tensor "${name}": missing dtype`);
    if (!(dtype in ITEM_SIZE)) {
      fail(`tensor "${name}" has unsupported dtype ${dtype} (supported: ${SUPPORTED})`);
    }
    if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
      fail(`tensor "${name}": shape must be an array of non-negative integers`);
    }
    if (
      !Array.isArray(offs) || offs.length !== 2 ||
      offs.some((d) => !Number.isSafeInteger(d) || d < 0)
    ) {
      fail(`tensor "${name}": data_offsets must be [begin, end] non-negative integers`);
    }
    const [begin, end] = offs as number[];
    if (begin > end || end > dataLen) {
      fail(
        `tensor "${name}": data_offsets [${begin}, ${end}] out of range (data section is ` +
          `${dataLen} bytes)`,
      );
    }
    const size = (shape as number[]).reduce((a, d) => a * d, 1) * ITEM_SIZE[dtype];
    if (end - begin !== size) {
      fail(
        `tensor "${name}": ${dtype} shape [${shape}] needs ${size} bytes but data_offsets ` +
          `[${begin}, ${end}] span ${end - begin}`,
      );
    }
    entries.push({ name, dtype, shape: shape as number[], begin, end });
  }
  // The tensors must tile the data section: sorted by offset, each starts where the last ended.
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  let prev: HeaderEntry | null = null;
  for (const e of sorted) {
    if (e.begin < pos) {
      fail(
        `tensors "${prev!.name}" [${prev!.begin}, ${prev!.end}] and "${e.name}" ` +
          `[${e.begin}, ${e.end}] overlap`,
      );
    }
    if (e.begin > pos) fail(`data bytes [${pos}, ${e.begin}) belong to no tensor (gap)`);
    pos = e.end;
    prev = e;
  }
  if (pos !== dataLen) {
    fail(`data section is ${dataLen} bytes but the tensors cover ${pos} (trailing bytes)`);
  }
  return { entries, metadata, dataStart };
}

/** Decodes a safetensors file into float32 arrays (header order). */
export function decodeSafetensors(
  bytes: Uint8Array,
): { tensors: Map<string, CpuTensor>; metadata: Metadata | null } {
  const { entries, metadata, dataStart } = parseHeader(bytes);
  const tensors = new Map<string, CpuTensor>();
  for (const e of entries) {
    const n = e.shape.reduce((a, d) => a * d, 1);
    const data = convert(e.dtype, bytes.subarray(dataStart + e.begin, dataStart + e.end), n);
    tensors.set(e.name, { shape: e.shape, data });
  }
  return { tensors, metadata };
}

// ---------------------------------------------------------------------------------------------
// Files

async function readBytes(path: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (e) {
    throw new Error(`cannot read safetensors file ${path}: ${e instanceof Error ? e.message : e}`);
  }
}

/** Throws on the first tensor holding NaN or +-Inf: weights like that give numbers that mean
 * nothing (NaN logits still have an argmax), so they are refused where they are loaded. */
export function checkFinite(tensors: Map<string, CpuTensor>, what: string): void {
  for (const [name, t] of tensors) {
    const d = t.data;
    let first = -1, count = 0;
    for (let i = 0; i < d.length; i++) {
      if (!Number.isFinite(d[i])) {
        if (first < 0) first = i;
        count++;
      }
    }
    if (first >= 0) {
      throw new Error(
        `${what}: tensor "${name}" holds ${count} non-finite value${count > 1 ? "s" : ""} ` +
          `(${d[first]} at index ${first} of ${d.length}): the file is corrupt or the training ` +
          `that wrote it diverged; use another checkpoint or retrain`,
      );
    }
  }
}

/** Reads a file into CPU float32 arrays; refuses tensors with NaN or Inf values. */
export async function readSafetensorsRaw(
  path: string,
): Promise<{ tensors: Map<string, CpuTensor>; metadata: Metadata | null }> {
  const bytes = await readBytes(path);
  let decoded: ReturnType<typeof decodeSafetensors>;
  try {
    decoded = decodeSafetensors(bytes);
  } catch (e) {
    throw new Error(`${path}: ${e instanceof Error ? e.message : e}`);
  }
  checkFinite(decoded.tensors, path);
  return decoded;
}

/** Reads a file and uploads each tensor (the caller owns and disposes them). With
 * `{withMetadata: true}` returns the metadata too. */
export async function readSafetensors(path: string): Promise<Map<string, Tensor>>;
export async function readSafetensors(
  path: string,
  o: { withMetadata: true },
): Promise<{ tensors: Map<string, Tensor>; metadata: Metadata | null }>;
export async function readSafetensors(
  path: string,
  o: { withMetadata?: boolean } = {},
): Promise<Map<string, Tensor> | { tensors: Map<string, Tensor>; metadata: Metadata | null }> {
  const raw = await readSafetensorsRaw(path);
  const tensors = new Map<string, Tensor>();
  for (const [k, t] of raw.tensors) tensors.set(k, Tensor.fromData(t.data, t.shape));
  return o.withMetadata ? { tensors, metadata: raw.metadata } : tensors;
}

/** Downloads GPU tensors (or takes CPU arrays) and writes them atomically as F32. */
export async function writeSafetensors(
  path: string,
  tensors: Map<string, Tensor | CpuTensor> | Record<string, Tensor | CpuTensor>,
  metadata?: Metadata,
): Promise<void> {
  const entries = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  const cpu = new Map<string, CpuTensor>();
  for (const [k, t] of entries) {
    cpu.set(
      k,
      t instanceof Tensor ? { shape: [...t.shape], data: await t.data() } : {
        shape: [...t.shape],
        data: t.data,
      },
    );
  }
  await writeFileAtomic(path, encodeSafetensors(cpu, metadata));
}
