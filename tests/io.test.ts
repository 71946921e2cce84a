// File I/O: safetensors (round trip, a hand-built file with F16/BF16/I64 tensors, every kind
// of corruption), atomic writes, PNG structure and pixels, hashes, the progress line.

import { assert, gpu } from "./helpers/check.ts";
import { Tensor } from "../runtime/tensor.ts";
import {
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
  readSafetensorsRaw,
  writeSafetensors,
} from "../runtime/io/safetensors.ts";
import { writeFileAtomic, writeJsonAtomic } from "../runtime/io/atomic.ts";
import { crc32, encodePng, gridPixels, imageGrid, imageGridPng } from "../runtime/io/png.ts";
import { hashFile, hashJson, md5Hex, sha256Hex, stableStringify } from "../runtime/io/hash.ts";
import { formatDuration, Progress } from "../runtime/io/progress.ts";

const te = new TextEncoder();

/** A safetensors file from a header string and raw data bytes, exactly as given. */
function rawFile(header: string, data: number[]): Uint8Array {
  const h = te.encode(header);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

function rejects(fn: () => unknown, ...parts: (string | RegExp)[]) {
  assert.throws(fn, (e: Error) => {
    for (const p of parts) {
      const ok = typeof p === "string" ? e.message.includes(p) : p.test(e.message);
      if (!ok) throw new Error(`message "${e.message}" lacks ${p}`);
    }
    return true;
  });
}

async function tmpDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "atop-io-test-" });
}

// ---------------------------------------------------------------------------------------------
// safetensors

Deno.test("safetensors: encode/decode round trip with metadata, padding and scalar", () => {
  const a = new Float32Array([1.5, -2, 3.25, 1e-30, -0, 7]);
  const b = new Float32Array([Math.PI]);
  const bytes = encodeSafetensors(
    { "layer.weight": { shape: [2, 3], data: a }, scalar: { shape: [], data: b } },
    { arch: "smallcnn", note: "ü" },
  );
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal((8 + n) % 8, 0, "data start is 8-byte aligned");
  const header = new TextDecoder().decode(bytes.subarray(8, 8 + n));
  assert.ok(header.startsWith("{"));
  assert.match(header, /} *$/, "padding is trailing spaces");
  assert.equal(bytes.length, 8 + n + 7 * 4);
  const { tensors, metadata } = decodeSafetensors(bytes);
  assert.deepEqual(metadata, { arch: "smallcnn", note: "ü" });
  assert.deepEqual([...tensors.keys()], ["layer.weight", "scalar"]);
  assert.deepEqual(tensors.get("layer.weight")!.shape, [2, 3]);
  assert.deepEqual([...tensors.get("layer.weight")!.data], [...a]);
  assert.ok(Object.is(tensors.get("layer.weight")!.data[4], -0));
  assert.deepEqual(tensors.get("scalar")!.shape, []);
  assert.equal(tensors.get("scalar")!.data[0], Math.fround(Math.PI));
  // Data bytes are little-endian float32 in header order: 1.5 = 0x3fc00000.
  assert.deepEqual([...bytes.subarray(8 + n, 8 + n + 4)], [0x00, 0x00, 0xc0, 0x3f]);
});

Deno.test("safetensors: hand-built file with F16, BF16, F32, I64 decodes exactly", () => {
  const header = JSON.stringify({
    half: { dtype: "F16", shape: [2, 4], data_offsets: [0, 16] },
    brain: { dtype: "BF16", shape: [4], data_offsets: [16, 24] },
    one: { dtype: "F32", shape: [], data_offsets: [24, 28] },
    "bn.num_batches_tracked": { dtype: "I64", shape: [], data_offsets: [28, 36] },
    __metadata__: { format: "pt" },
  });
  // Deliberately not padded: the data start is unaligned, which readers must accept.
  assert.notEqual((8 + te.encode(header).length) % 4, 0);
  const data = [
    // F16 (little-endian): 1.0, -2.5, 65504, 2^-24 (smallest subnormal), 0x03ff (largest
    // subnormal), -inf, NaN, -0
    0x00,
    0x3c,
    0x00,
    0xc1,
    0xff,
    0x7b,
    0x01,
    0x00,
    0xff,
    0x03,
    0x00,
    0xfc,
    0x00,
    0x7e,
    0x00,
    0x80,
    // BF16: 1.0, -2.5, 3.140625, 0x0001 (2^-133, a float32 subnormal)
    0x80,
    0x3f,
    0x20,
    0xc0,
    0x49,
    0x40,
    0x01,
    0x00,
    // F32: 1.5
    0x00,
    0x00,
    0xc0,
    0x3f,
    // I64: 12345
    0x39,
    0x30,
    0,
    0,
    0,
    0,
    0,
    0,
  ];
  const { tensors, metadata } = decodeSafetensors(rawFile(header, data));
  assert.deepEqual(metadata, { format: "pt" });
  const half = tensors.get("half")!;
  assert.deepEqual(half.shape, [2, 4]);
  assert.deepEqual(
    [...half.data.slice(0, 6)],
    [1, -2.5, 65504, 2 ** -24, 1023 * 2 ** -24, -Infinity],
  );
  assert.ok(Number.isNaN(half.data[6]));
  assert.ok(Object.is(half.data[7], -0));
  assert.deepEqual([...tensors.get("brain")!.data], [1, -2.5, 3.140625, 2 ** -133]);
  assert.deepEqual([...tensors.get("one")!.data], [1.5]);
  assert.deepEqual(tensors.get("one")!.shape, []);
  assert.deepEqual([...tensors.get("bn.num_batches_tracked")!.data], [12345]);
});

Deno.test("safetensors: every F16 code matches an independent bit-level conversion", () => {
  const codes = new Uint16Array(65536).map((_, i) => i);
  const header = JSON.stringify({ h: { dtype: "F16", shape: [65536], data_offsets: [0, 131072] } });
  const bytes = rawFile(header, [...new Uint8Array(codes.buffer)]);
  const got = decodeSafetensors(bytes).tensors.get("h")!.data;
  const bits = new Uint32Array(got.buffer);
  for (let h = 0; h < 65536; h++) {
    // Reference: rebuild the float32 bit pattern (normals re-biased, subnormals normalised).
    const s = (h & 0x8000) << 16, e = (h >> 10) & 0x1f;
    let m = h & 0x3ff;
    let want: number;
    if (e === 31) want = s | 0x7f800000 | (m << 13);
    else if (e === 0 && m === 0) want = s;
    else if (e === 0) {
      let ee = -14;
      while (!(m & 0x400)) {
        m <<= 1;
        ee--;
      }
      want = s | ((ee + 127) << 23) | ((m & 0x3ff) << 13);
    } else want = s | ((e - 15 + 127) << 23) | (m << 13);
    if (e === 31 && (h & 0x3ff)) assert.ok(Number.isNaN(got[h]), `code ${h} should be NaN`);
    else assert.equal(bits[h], want >>> 0, `F16 code 0x${h.toString(16)}`);
  }
});

Deno.test("safetensors: corrupt files are rejected with a message saying what is wrong", () => {
  const good = encodeSafetensors({
    a: { shape: [2], data: new Float32Array([1, 2]) },
    b: { shape: [1], data: new Float32Array([3]) },
  });
  rejects(() => decodeSafetensors(good.subarray(0, 5)), "5 bytes", "truncated");
  rejects(() => decodeSafetensors(new Uint8Array(0)), "0 bytes");
  const huge = good.slice();
  new DataView(huge.buffer).setBigUint64(0, 1n << 40n, true);
  rejects(() => decodeSafetensors(huge), "header length 1099511627776", "beyond the end");
  // Truncated data section: the last tensor's offsets run past the end.
  rejects(() => decodeSafetensors(good.subarray(0, good.length - 2)), '"b"', "out of range");
  const entry = (dtype: string, shape: number[], o: number[]) => ({
    dtype,
    shape,
    data_offsets: o,
  });
  rejects(() => decodeSafetensors(rawFile('{"a": {"dtype": "F32",', [])), "not valid UTF-8 JSON");
  rejects(() => decodeSafetensors(rawFile("[1,2]", [])), "must be a JSON object");
  rejects(
    () => decodeSafetensors(rawFile(JSON.stringify({ w: entry("F8_E4M3", [2], [0, 2]) }), [1, 2])),
    'tensor "w"',
    "F8_E4M3",
    "supported: F32, F16, BF16",
  );
  rejects(
    () => decodeSafetensors(rawFile(JSON.stringify({ w: entry("F32", [2], [0, 8]) }), [0, 0, 0])),
    'tensor "w"',
    "[0, 8] out of range",
    "3 bytes",
  );
  rejects(
    () =>
      decodeSafetensors(
        rawFile(
          JSON.stringify({ p: entry("F32", [2], [0, 8]), q: entry("F32", [1], [4, 8]) }),
          new Array(8).fill(0),
        ),
      ),
    "overlap",
    '"p"',
    '"q"',
  );
  rejects(
    () =>
      decodeSafetensors(
        rawFile(JSON.stringify({ w: entry("F32", [3], [0, 8]) }), new Array(8).fill(0)),
      ),
    'tensor "w"',
    "shape [3] needs 12 bytes",
    "span 8",
  );
  rejects(
    () =>
      decodeSafetensors(
        rawFile(JSON.stringify({ w: entry("F32", [1], [4, 8]) }), new Array(8).fill(0)),
      ),
    "gap",
  );
  rejects(
    () =>
      decodeSafetensors(
        rawFile(JSON.stringify({ w: entry("F32", [1], [0, 4]) }), new Array(8).fill(0)),
      ),
    "trailing",
  );
  rejects(
    () => decodeSafetensors(rawFile(JSON.stringify({ __metadata__: { n: 1 } }), [])),
    "__metadata__",
    "string",
  );
  rejects(
    () => decodeSafetensors(rawFile(JSON.stringify({ w: { dtype: "F32", shape: [1] } }), [])),
    "data_offsets",
  );
  rejects(
    () => encodeSafetensors({ a: { shape: [3], data: new Float32Array(2) } }),
    '"a"',
    "3 values",
  );
  rejects(
    () => encodeSafetensors({}, { n: 5 as unknown as string }),
    "metadata",
    "JSON.stringify",
  );
});

Deno.test("safetensors: GPU tensors written and read back through a file", async () => {
  await gpu();
  const dir = await tmpDir();
  try {
    const w = Tensor.fromData([0.5, -1.25, 3, 4, 5, 6], [3, 2]);
    const b = Tensor.fromData([42], []);
    const path = `${dir}/sub/model.safetensors`;
    await writeSafetensors(path, new Map([["fc.weight", w], ["fc.bias", b]]), { epoch: "3" });
    const back = await readSafetensors(path);
    assert.deepEqual([...back.keys()], ["fc.weight", "fc.bias"]);
    assert.deepEqual(back.get("fc.weight")!.shape, [3, 2]);
    assert.deepEqual([...await back.get("fc.weight")!.data()], [0.5, -1.25, 3, 4, 5, 6]);
    assert.deepEqual([...await back.get("fc.bias")!.data()], [42]);
    const withMeta = await readSafetensors(path, { withMetadata: true });
    assert.deepEqual(withMeta.metadata, { epoch: "3" });
    const raw = await readSafetensorsRaw(path);
    assert.deepEqual([...raw.tensors.get("fc.weight")!.data], [0.5, -1.25, 3, 4, 5, 6]);
    for (const t of [w, b, ...back.values(), ...withMeta.tensors.values()]) t.dispose();
    await Deno.writeFile(`${dir}/bad.safetensors`, new Uint8Array([1, 2, 3]));
    await assert.rejects(readSafetensors(`${dir}/bad.safetensors`), /bad\.safetensors.*3 bytes/);
    await assert.rejects(readSafetensors(`${dir}/missing.safetensors`), /missing\.safetensors/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------
// atomic writes

Deno.test("writeFileAtomic: creates parents, replaces content, leaves no temp files", async () => {
  const dir = await tmpDir();
  try {
    const path = `${dir}/a/b/c.txt`;
    await writeFileAtomic(path, "first");
    await writeFileAtomic(path, new Uint8Array([104, 105]));
    assert.equal(await Deno.readTextFile(path), "hi");
    await writeJsonAtomic(`${dir}/a/x.json`, { k: [1, 2] });
    assert.deepEqual(JSON.parse(await Deno.readTextFile(`${dir}/a/x.json`)), { k: [1, 2] });
    const names = [...Deno.readDirSync(`${dir}/a/b`)].map((e) => e.name);
    assert.deepEqual(names, ["c.txt"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeFileAtomic: a failure mid-write keeps the old file and removes the temp", async () => {
  const dir = await tmpDir();
  try {
    const path = `${dir}/state.json`;
    await writeFileAtomic(path, "old");
    // Data whose reads fail after the temp file was opened (like a full disk).
    class Failing extends Uint8Array {
      override subarray(): Uint8Array<ArrayBuffer> {
        throw new Error("simulated write failure");
      }
    }
    await assert.rejects(
      writeFileAtomic(path, new Failing(10)),
      /cannot write .*state\.json: simulated write failure/,
    );
    assert.equal(await Deno.readTextFile(path), "old");
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["state.json"]);
    // A target that is a non-empty directory: rename fails, nothing is clobbered.
    await Deno.mkdir(`${dir}/d`);
    await Deno.writeTextFile(`${dir}/d/keep`, "k");
    await assert.rejects(writeFileAtomic(`${dir}/d`, "x"), /cannot write/);
    assert.equal(await Deno.readTextFile(`${dir}/d/keep`), "k");
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["d", "state.json"]);
    await assert.rejects(writeJsonAtomic(`${dir}/u.json`, undefined), /not JSON/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------
// PNG

/** Bitwise CRC-32, independent of the table-driven one under test. */
function crcRef(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return (c ^ 0xffffffff) >>> 0;
}

/** Parses chunks (checking each CRC) and inflates the filter-0 scanlines. */
async function decodePng(png: Uint8Array) {
  assert.deepEqual([...png.subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10]);
  const dv = new DataView(png.buffer, png.byteOffset);
  const chunks: { type: string; data: Uint8Array }[] = [];
  for (let o = 8; o < png.length;) {
    const len = dv.getUint32(o);
    const type = new TextDecoder().decode(png.subarray(o + 4, o + 8));
    const data = png.subarray(o + 8, o + 8 + len);
    assert.equal(
      dv.getUint32(o + 8 + len),
      crcRef(png.subarray(o + 4, o + 8 + len)),
      `${type} CRC`,
    );
    chunks.push({ type, data });
    o += 12 + len;
  }
  assert.deepEqual(chunks.map((c) => c.type), ["IHDR", "IDAT", "IEND"]);
  const ih = new DataView(chunks[0].data.buffer, chunks[0].data.byteOffset);
  const width = ih.getUint32(0), height = ih.getUint32(4);
  const [depth, colour, comp, filter, interlace] = chunks[0].data.subarray(8, 13);
  assert.deepEqual([depth, comp, filter, interlace], [8, 0, 0, 0]);
  const channels = colour === 2 ? 3 : colour === 6 ? 4 : 0;
  const stream = new Blob([chunks[1].data as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new DecompressionStream("deflate"));
  const raw = new Uint8Array(await new Response(stream).arrayBuffer());
  assert.equal(raw.length, height * (1 + width * channels));
  const pixels = new Uint8Array(width * height * channels);
  for (let y = 0; y < height; y++) {
    const row = raw.subarray(y * (1 + width * channels));
    assert.equal(row[0], 0, "filter type none");
    pixels.set(row.subarray(1, 1 + width * channels), y * width * channels);
  }
  return { width, height, channels, pixels };
}

Deno.test("png: known CRC, signature, IHDR, chunk CRCs and pixel round trip (RGB, RGBA)", async () => {
  assert.equal(crc32(te.encode("123456789")), 0xcbf43926);
  const rgb = Uint8Array.from({ length: 5 * 3 * 3 }, (_, i) => (i * 37 + 11) % 256);
  const a = await decodePng(await encodePng(rgb, 5, 3));
  assert.deepEqual([a.width, a.height, a.channels], [5, 3, 3]);
  assert.deepEqual([...a.pixels], [...rgb]);
  const rgba = Uint8Array.from({ length: 2 * 3 * 4 }, (_, i) => (i * 91 + 3) % 256);
  const b = await decodePng(await encodePng(rgba, 2, 3));
  assert.deepEqual([b.width, b.height, b.channels], [2, 3, 4]);
  assert.deepEqual([...b.pixels], [...rgba]);
  await assert.rejects(
    encodePng(new Uint8Array(7), 2, 2),
    /7 bytes for 2x2; need 12 \(RGB\) or 16/,
  );
});

Deno.test("png: imageGrid places each image with gaps; imageGridPng lays out columns", async () => {
  const shape = [3, 2, 3] as const; // C, H, W
  const d = 18;
  const img = (k: number) => Float32Array.from({ length: d }, (_, i) => ((k * 7 + i) % 11) / 10);
  const rows = [new Float32Array([...img(0), ...img(1)]), img(2)];
  const { rgb, width, height } = gridPixels(rows, shape, { gap: 1, background: 9 });
  assert.deepEqual([width, height], [2 * 3 + 1, 2 * 2 + 1]);
  const at = (
    x: number,
    y: number,
  ) => [...rgb.subarray((y * width + x) * 3, (y * width + x) * 3 + 3)];
  const expect = (k: number, x: number, y: number) =>
    [0, 1, 2].map((c) => Math.round(img(k)[(c * 2 + y) * 3 + x] * 255));
  for (let y = 0; y < 2; y++) {
    for (let x = 0; x < 3; x++) {
      assert.deepEqual(at(x, y), expect(0, x, y));
      assert.deepEqual(at(4 + x, y), expect(1, x, y));
      assert.deepEqual(at(x, 3 + y), expect(2, x, y));
      assert.deepEqual(at(4 + x, 3 + y), [9, 9, 9], "empty cell");
    }
    assert.deepEqual(at(3, y), [9, 9, 9], "column gap");
  }
  for (let x = 0; x < width; x++) assert.deepEqual(at(x, 2), [9, 9, 9], "row gap");
  const png = await decodePng(await imageGrid(rows, shape, { gap: 1, background: 9 }));
  assert.deepEqual([...png.pixels], [...rgb]);
  // Columns layout: row i = example i of each column; values outside [0,1] are clamped.
  const col0 = new Float32Array([...img(0), ...img(1)]), col1 = new Float32Array(2 * d).fill(2);
  const g = await decodePng(await imageGridPng([col0, col1], 2, shape, 1, 1));
  assert.deepEqual([g.width, g.height], [7, 5]);
  assert.deepEqual([...g.pixels.subarray(0, 3)], expect(0, 0, 0));
  assert.deepEqual([...g.pixels.subarray(4 * 3, 4 * 3 + 3)], [255, 255, 255]);
  assert.deepEqual([...g.pixels.subarray((3 * 7) * 3, (3 * 7) * 3 + 3)], expect(1, 0, 0));
  // Upscaling repeats every pixel f x f times.
  const big = gridPixels(rows, shape, { gap: 1, background: 9, scale: 3 });
  assert.deepEqual([big.width, big.height], [width * 3, height * 3]);
  for (let y = 0; y < big.height; y++) {
    for (let x = 0; x < big.width; x++) {
      const p = (y * big.width + x) * 3, q = (Math.floor(y / 3) * width + Math.floor(x / 3)) * 3;
      assert.deepEqual([...big.rgb.subarray(p, p + 3)], [...rgb.subarray(q, q + 3)]);
    }
  }
  assert.throws(() => gridPixels(rows, shape, { scale: 1.5 }), /scale must be an integer/);
  assert.throws(() => gridPixels([new Float32Array(5)], shape), /row 0 has 5 values/);
  assert.throws(() => gridPixels([img(0)], [2, 3, 3]), /1 or 3 channels/);
});

// ---------------------------------------------------------------------------------------------
// hashes

Deno.test("hash: known answers, files, stable JSON", async () => {
  assert.equal(md5Hex("abc"), "900150983cd24fb0d6963f7d28e17f72");
  assert.equal(md5Hex(new Uint8Array(0)), "d41d8cd98f00b204e9800998ecf8427e");
  assert.equal(
    await sha256Hex("abc"),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
  const dir = await tmpDir();
  try {
    // Larger than one read chunk, so chunked hashing is exercised.
    const big = Uint8Array.from({ length: (1 << 20) + 123 }, (_, i) => (i * 31) & 255);
    await Deno.writeFile(`${dir}/f`, big);
    assert.equal(await hashFile(`${dir}/f`), await sha256Hex(big));
    assert.equal(await hashFile(`${dir}/f`, "md5"), md5Hex(big));
    await assert.rejects(hashFile(`${dir}/none`), /hashFile: cannot open .*none/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  assert.equal(
    stableStringify({ b: 1, a: { d: [3, { z: 1, y: undefined }], c: "x" }, u: undefined }),
    '{"a":{"c":"x","d":[3,{"z":1}]},"b":1}',
  );
  assert.equal(stableStringify([undefined, new Date(0)]), '[null,"1970-01-01T00:00:00.000Z"]');
  assert.equal(await hashJson({ x: 1, y: [2] }), await hashJson({ y: [2], x: 1 }));
  assert.notEqual(await hashJson({ x: 1 }), await hashJson({ x: 2 }));
  assert.equal(await hashJson({ x: 1 }), await sha256Hex('{"x":1}'));
  assert.throws(() => stableStringify({ m: new Map() }), /Map at \$\.m/);
});

// ---------------------------------------------------------------------------------------------
// progress

Deno.test("progress: line format, 10% lines off a terminal, throttled redraws on one", () => {
  assert.equal(formatDuration(19.4), "0:19");
  assert.equal(formatDuration(3725), "1:02:05");
  assert.equal(formatDuration(Infinity), "?");
  let t = 0;
  const out: string[] = [];
  const p = new Progress(1000, "train", 0, { tty: false, now: () => t, write: (s) => out.push(s) });
  for (let i = 0; i < 1000; i++) {
    t += 10; // 100 it/s
    p.tick(1, "loss 0.5");
  }
  assert.equal(out.length, 10);
  assert.equal(out[0], "train  100/1000  100.0 it/s  ETA 0:09  loss 0.5\n");
  assert.equal(out[9], "train  1000/1000  100.0 it/s  ETA 0:00  loss 0.5\n");
  p.done();
  p.done();
  assert.equal(out.length, 11);
  assert.equal(out[10], "train  1000/1000  done in 0:10\n");

  // Resumed at 500 of 1000 on a terminal: rate counts only new items; redraws at most 2 Hz.
  t = 0;
  const tty: string[] = [];
  const q = new Progress(1000, "ep", 500, { tty: true, now: () => t, write: (s) => tty.push(s) });
  for (let i = 0; i < 200; i++) {
    t += 20; // 50 it/s, 4 s in all
    q.tick();
  }
  assert.ok(tty.length >= 7 && tty.length <= 9, `${tty.length} redraws in 4 s`);
  assert.ok(tty.every((s) => s.startsWith("\r\x1b[K") && !s.includes("\n")));
  assert.equal(q.line(), "ep  700/1000  50.0 it/s  ETA 0:06");
});

Deno.test("progress: off a terminal, a line at least every 10 s even between 10% marks", () => {
  let t = 0;
  const out: string[] = [];
  const p = new Progress(1000, "eval", 0, { tty: false, now: () => t, write: (s) => out.push(s) });
  for (let i = 0; i < 20; i++) {
    t += 3000; // one slow item every 3 s: 10% would take 5 minutes
    p.tick(1);
  }
  // 60 s without a 10% mark: a line at 12, 24, 36, 48 and 60 s.
  assert.equal(out.length, 5, out.join(""));
  assert.equal(out[0], "eval  4/1000  0.3 it/s  ETA 49:48\n");
  // Items of an earlier run (a resume) count as done but not in the rate.
  p.resumed(100);
  assert.equal(p.line(), "eval  120/1000  0.3 it/s  ETA 44:00");
  p.done();
});

Deno.test("progress: the heartbeat repeats the line while one item takes long", async () => {
  const out: string[] = [];
  const p = new Progress(10, "stage", 0, { tty: false, quietMs: 40, write: (s) => out.push(s) });
  assert.equal(out.length, 1, "a first line at once");
  assert.match(out[0], /^stage {2}0\/10 {2}0\.0 it\/s {2}ETA \?\n$/);
  await new Promise((r) => setTimeout(r, 400)); // an item that takes long: no tick at all
  const beats = out.length - 1;
  // About one per 40 ms; a busy machine delays timers, so only bound it loosely.
  assert.ok(beats >= 2 && beats <= 11, `${beats} heartbeat lines in 400 ms`);
  p.done();
  const n = out.length;
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(out.length, n, "no heartbeat after done()");
});
