// Counter-based random numbers (Philox4x32-10) generated on the GPU, with bit-exact CPU
// mirrors. An Rng is a key (seed, stream) plus a 64-bit counter offset: call k uses counters
// offset .. offset + ceil(n/4) - 1, then the offset moves past them, so draws never overlap
// and any draw can be replayed from its state. `fork(i)` gives an independent child key.

import { engine } from "./engine.ts";
import { type Shape, shapeSize, Tensor } from "./tensor.ts";
import { checkShape } from "./tensor.ts";
import { launch1d, words } from "./ops/util.ts";

export type Word4 = [number, number, number, number];

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;
const TWO32 = 4294967296;

/** High 32 bits of the exact 64-bit product of two u32 (16-bit halves keep it exact). */
function mulhi(a: number, b: number): number {
  const al = a & 0xffff, ah = a >>> 16;
  const bl = b & 0xffff, bh = b >>> 16;
  const ll = al * bl, lh = al * bh, hl = ah * bl, hh = ah * bh;
  const mid = (ll >>> 16) + (lh & 0xffff) + (hl & 0xffff);
  return (hh + (lh >>> 16) + (hl >>> 16) + (mid >>> 16)) >>> 0;
}

/** Philox4x32-10 block function: 4 counter words and 2 key words to 4 random words. */
export function philox4x32(ctr: Word4, key: [number, number]): Word4 {
  let [c0, c1, c2, c3] = ctr.map((x) => x >>> 0);
  let k0 = key[0] >>> 0, k1 = key[1] >>> 0;
  for (let r = 0; r < 10; r++) {
    if (r > 0) {
      k0 = (k0 + W0) >>> 0;
      k1 = (k1 + W1) >>> 0;
    }
    const hi0 = mulhi(M0, c0), lo0 = Math.imul(M0, c0) >>> 0;
    const hi1 = mulhi(M1, c2), lo1 = Math.imul(M1, c2) >>> 0;
    [c0, c1, c2, c3] = [(hi1 ^ c1 ^ k0) >>> 0, lo1, (hi0 ^ c3 ^ k1) >>> 0, lo0];
  }
  return [c0, c1, c2, c3];
}

/** murmur3's 32-bit finalizer: a bijection on u32 with full avalanche. */
function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export interface RngState {
  seed: number;
  stream: number;
  /** Next unused counter (a block of 4 words each). */
  offset: number;
}

/** The Philox key of (seed, stream): [seed low word, a word derived from stream and the seed's
 * high word]. For a fixed seed, distinct 32-bit streams give distinct keys. */
export function rngKey(seed: number, stream: number): [number, number] {
  const seedHi = Math.floor(seed / TWO32) >>> 0;
  const streamHi = Math.floor(stream / TWO32) >>> 0;
  const salt = fmix((seedHi ^ 0x243f6a88) + Math.imul(streamHi, 0x85ebca6b) >>> 0);
  return [seed >>> 0, fmix((stream >>> 0) ^ salt)];
}

function checkState(what: string, s: RngState): void {
  for (const f of ["seed", "stream", "offset"] as const) {
    const v = s?.[f];
    if (!Number.isSafeInteger(v) || (f !== "seed" && v < 0)) {
      throw new Error(
        `${what}: ${f} must be a ${f === "seed" ? "" : "non-negative "}safe integer, got ${v}`,
      );
    }
  }
}

const blocks = (n: number) => Math.ceil(n / 4);

/** The n raw words a draw of n elements from `state` uses (CPU, for mirrors and tests). */
export function philoxWords(state: RngState, n: number): Uint32Array {
  checkState("philoxWords", state);
  const key = rngKey(state.seed, state.stream);
  const out = new Uint32Array(blocks(n) * 4);
  for (let b = 0; b < blocks(n); b++) {
    const c = state.offset + b;
    out.set(philox4x32([c >>> 0, Math.floor(c / TWO32) >>> 0, 0, 0], key), 4 * b);
  }
  return out.subarray(0, n);
}

const unit = (w: number) => (w >>> 8) * 2 ** -24;

/** CPU mirror of `Rng.uniform` from `state`: bit-identical to the GPU for lo = 0, hi = 1; for
 * other ranges within 1 ulp (a shader compiler may fuse lo + (hi - lo) u into one fma). */
export function uniformCpu(state: RngState, n: number, lo = 0, hi = 1): Float32Array {
  const w = philoxWords(state, n);
  const a = Math.fround(lo), b = Math.fround(hi - lo);
  return Float32Array.from(w, (x) => Math.fround(a + Math.fround(b * unit(x))));
}

/** CPU mirror of `Rng.bernoulli` (bit-identical to the GPU). */
export function bernoulliCpu(state: RngState, n: number, p: number): Float32Array {
  const w = philoxWords(state, n);
  const pf = Math.fround(p);
  return Float32Array.from(w, (x) => (unit(x) < pf ? 1 : 0));
}

/** CPU mirror of `Rng.normal` in float64 (the GPU agrees to ~1e-6 relative). */
export function normalCpu(state: RngState, n: number, mean = 0, std = 1): Float64Array {
  const w = philoxWords(state, blocks(n) * 4);
  const out = new Float64Array(n);
  const m = Math.fround(mean), s = Math.fround(std);
  for (let i = 0; i < n; i++) {
    const pair = i >> 1;
    const u1 = ((w[2 * pair] >>> 8) + 1) * 2 ** -24;
    const u2 = unit(w[2 * pair + 1]);
    const r = Math.sqrt(-2 * Math.log(u1));
    const z = i % 2 === 0 ? r * Math.cos(2 * Math.PI * u2) : r * Math.sin(2 * Math.PI * u2);
    out[i] = m + s * z;
  }
  return out;
}

const OP = { uniform: 0, normal: 1, bernoulli: 2 } as const;

/** The (a, b) kernel words of a draw, after checking its parameters (shared by Rng and
 * RowRng so both refuse the same bad input with the same message). */
function drawWords(
  who: string,
  op: keyof typeof OP,
  p: { lo?: number; hi?: number; mean?: number; std?: number; p?: number },
): [number, number] {
  if (op === "uniform") {
    const lo = p.lo ?? 0, hi = p.hi ?? 1;
    if (!(Number.isFinite(lo) && Number.isFinite(hi) && lo <= hi)) {
      throw new Error(`${who}.uniform: need finite lo <= hi, got lo=${lo}, hi=${hi}`);
    }
    return [Math.fround(lo), Math.fround(hi - lo)];
  }
  if (op === "normal") {
    const mean = p.mean ?? 0, std = p.std ?? 1;
    if (!(Number.isFinite(mean) && Number.isFinite(std) && std >= 0)) {
      throw new Error(`${who}.normal: need finite mean and std >= 0, got mean=${mean}, std=${std}`);
    }
    return [mean, std];
  }
  const q = p.p!;
  if (!(q >= 0 && q <= 1)) throw new Error(`${who}.bernoulli: p must be in [0, 1], got ${q}`);
  return [q, 0];
}

export class Rng {
  #seed: number;
  #stream: number;
  #offset = 0;
  #key: [number, number];

  constructor(seed: number, stream = 0) {
    checkState("Rng", { seed, stream, offset: 0 });
    this.#seed = seed;
    this.#stream = stream;
    this.#key = rngKey(seed, stream);
  }

  /** Uniform floats in [lo, hi): top 24 bits of each word times 2^-24, then lo + (hi-lo) u. */
  uniform(shape: Shape, lo = 0, hi = 1): Tensor {
    return this.#draw("uniform", shape, ...drawWords("Rng", "uniform", { lo, hi }));
  }

  /** Normal floats (Box-Muller on pairs of words). */
  normal(shape: Shape, mean = 0, std = 1): Tensor {
    return this.#draw("normal", shape, ...drawWords("Rng", "normal", { mean, std }));
  }

  /** 1 with probability p (where the uniform draw is below p), else 0. */
  bernoulli(shape: Shape, p: number): Tensor {
    return this.#draw("bernoulli", shape, ...drawWords("Rng", "bernoulli", { p }));
  }

  #draw(op: keyof typeof OP, shape: Shape, a: number, b: number): Tensor {
    checkShape(shape, `Rng.${op}`);
    const n = shapeSize(shape);
    const out = Tensor.empty(shape);
    const at = (base: number) =>
      words(n, this.#key, base >>> 0, Math.floor(base / TWO32) >>> 0, { f: a }, { f: b });
    // A captured step replays this draw at the counter reached by then, and moves it on.
    let replayBase = this.#offset;
    const recording = engine().recording;
    if (recording) {
      engine().onReplay(() => {
        replayBase = this.#offset;
        this.#offset += blocks(n);
      }, this);
    }
    launch1d(
      "philox",
      blocks(n),
      [out.buffer],
      at(this.#offset),
      { OP: OP[op] },
      undefined,
      recording ? () => at(replayBase) : undefined,
    );
    this.#offset += blocks(n);
    return out;
  }

  /** An independent child generator, a pure function of (seed, stream, i): e.g. one per
   * example, so an example's numbers do not depend on its batch. Children of one parent have
   * distinct keys; the parent's counter is untouched. */
  fork(i: number): Rng {
    if (!Number.isInteger(i) || i < 0 || i >= TWO32) {
      throw new Error(`Rng.fork: index must be an integer in [0, 2^32), got ${i}`);
    }
    const child = fmix((fmix(this.#key[1] ^ 0x6a09e667) + i) >>> 0);
    return new Rng(this.#seed, child);
  }

  getState(): RngState {
    return { seed: this.#seed, stream: this.#stream, offset: this.#offset };
  }

  setState(s: RngState): void {
    checkState("Rng.setState", s);
    this.#seed = s.seed;
    this.#stream = s.stream;
    this.#offset = s.offset;
    this.#key = rngKey(s.seed, s.stream);
  }
}

/** Anything the random transforms draw from: a sequential Rng, or a RowRng keyed by example. */
export interface RandomSource {
  uniform(shape: Shape, lo?: number, hi?: number): Tensor;
  normal(shape: Shape, mean?: number, std?: number): Tensor;
  bernoulli(shape: Shape, p: number): Tensor;
}

/** Which example a batch row holds and how many calls that example had before this one. */
export interface RowKey {
  index: number;
  call: number;
}

const ROW_WORD_LIMIT = 2 ** 24; // row words travel as exact f32 integers

function checkRowKeys(what: string, rows: readonly RowKey[]): void {
  for (const r of rows) {
    for (const f of ["index", "call"] as const) {
      if (!Number.isInteger(r[f]) || r[f] < 0 || r[f] >= ROW_WORD_LIMIT) {
        throw new Error(`${what}: row ${f} must be an integer in [0, 2^24), got ${r[f]}`);
      }
    }
  }
}

/** The raw words of row key `row`, draw `tag`, for a row of `rowLen` elements (CPU mirror of
 * philox_rows.wgsl). */
export function rowWordsCpu(
  seed: number,
  stream: number,
  row: RowKey,
  tag: number,
  rowLen: number,
): Uint32Array {
  checkRowKeys("rowWordsCpu", [row]);
  const key = rngKey(seed, stream);
  const out = new Uint32Array(blocks(rowLen) * 4);
  for (let b = 0; b < blocks(rowLen); b++) {
    out.set(philox4x32([b, row.index, row.call, tag >>> 0], key), 4 * b);
  }
  return out.subarray(0, rowLen);
}

/** Random numbers for a batch whose row r belongs to example rows[r].index at that example's
 * call rows[r].call: each row is keyed by (seed, stream, index, call, draw), so an example's
 * randomness does not depend on the batch size, the batch order, the shard or a resume.
 * Successive draws of one RowRng (noise, then mask, ...) get successive tags. */
export class RowRng implements RandomSource {
  #key: [number, number];
  #rowWords: Float32Array;
  #tag = 0;

  constructor(
    readonly seed: number,
    readonly stream: number,
    readonly rows: readonly RowKey[],
  ) {
    checkState("RowRng", { seed, stream, offset: 0 });
    checkRowKeys("RowRng", rows);
    this.#key = rngKey(seed, stream);
    this.#rowWords = new Float32Array(rows.length * 2);
    this.#setRows(rows);
  }

  #setRows(rows: readonly RowKey[]): void {
    rows.forEach((r, i) => {
      this.#rowWords[2 * i] = r.index;
      this.#rowWords[2 * i + 1] = r.call;
    });
  }

  /** New row keys and stream for the same rows (a captured step's replay: the draws it
   * recorded then use what this call would have drawn). */
  rekey(stream: number, rows: readonly RowKey[]): void {
    if (rows.length !== this.rows.length) throw new Error("RowRng.rekey: the row count changed");
    checkRowKeys("RowRng.rekey", rows);
    this.#key = rngKey(this.seed, stream);
    this.#setRows(rows);
  }

  /** The tag the next draw will use. */
  get tag(): number {
    return this.#tag;
  }

  uniform(shape: Shape, lo = 0, hi = 1): Tensor {
    return this.#draw("uniform", shape, ...drawWords("RowRng", "uniform", { lo, hi }));
  }

  normal(shape: Shape, mean = 0, std = 1): Tensor {
    return this.#draw("normal", shape, ...drawWords("RowRng", "normal", { mean, std }));
  }

  bernoulli(shape: Shape, p: number): Tensor {
    return this.#draw("bernoulli", shape, ...drawWords("RowRng", "bernoulli", { p }));
  }

  #draw(op: keyof typeof OP, shape: Shape, a: number, b: number): Tensor {
    checkShape(shape, `RowRng.${op}`);
    if (shape[0] !== this.rows.length) {
      throw new Error(
        `RowRng.${op}: the first dimension must be the batch (${this.rows.length} rows), got ` +
          `shape [${shape}]`,
      );
    }
    const n = shapeSize(shape);
    const out = Tensor.empty(shape);
    const rowLen = this.rows.length ? n / this.rows.length : 0;
    // The row words and the key are refreshed when a captured step replays (rekey).
    const keys = Tensor.empty([this.#rowWords.length]);
    const recording = engine().recording;
    if (keys.size > 0) {
      engine().upload(keys.buffer, this.#rowWords, 0, recording ? () => this.#rowWords : undefined);
    }
    const tag = this.#tag;
    const at = () => words(this.rows.length, this.#key, rowLen, tag, { f: a }, { f: b });
    launch1d(
      "philox_rows",
      this.rows.length * blocks(rowLen),
      [out.buffer, keys.buffer],
      at(),
      { OP: OP[op] },
      undefined,
      recording ? at : undefined,
    );
    keys.dispose();
    this.#tag++;
    return out;
  }
}

/** Per-example call counters of a randomized defense: the k-th call that includes example i
 * draws from RowRng(seed, stream of the scope, {index: i, call: k}). An example's randomness
 * is then a function of its own history only. Rows repeating an example within one call (a
 * Jacobian batch, EOT copies) share its draw. `reset` starts the examples' counts again at 0
 * in a scope: the evaluation gives each attack its own, so adding, removing or reordering
 * attacks leaves every other attack's draws as they were. */
export class ExampleDraws {
  #calls = new Map<number, number>();
  #stream: number;

  constructor(readonly seed: number, readonly stream: number) {
    checkState("ExampleDraws", { seed, stream, offset: 0 });
    this.#stream = stream;
  }

  /** The generator for one call on a batch whose rows hold examples `rows`. An example that
   * appears k times in one call takes k consecutive call numbers, in row order: a batch of K
   * stacked copies (batched EOT draws, votes) draws exactly what K calls would. */
  next(rows: readonly number[]): RowRng {
    const own = [...rows];
    const rng = new RowRng(this.seed, this.#stream, this.#advance(own));
    // A captured step that drew here draws the next call's numbers at each replay.
    if (engine().recording) {
      engine().onReplay(() => rng.rekey(this.#stream, this.#advance(own)), this, own.join(","));
    }
    return rng;
  }

  #advance(rows: readonly number[]): RowKey[] {
    return rows.map((index) => {
      const call = this.#calls.get(index) ?? 0;
      this.#calls.set(index, call + 1);
      return { index, call };
    });
  }

  /** Restarts these examples at call 0 in `scope` (0: the clean verdict and the checks). */
  reset(rows: readonly number[], scope = 0): void {
    for (const i of rows) this.#calls.delete(i);
    this.#stream = scope === 0
      ? this.stream
      : fmix((fmix(this.stream ^ 0x3c6ef372) + (scope >>> 0)) >>> 0);
  }
}

/** A 32-bit scope id for an evaluation's attack, from its name and settings. */
export function drawScope(what: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < what.length; i++) h = Math.imul(h ^ what.charCodeAt(i), 0x01000193) >>> 0;
  return h === 0 ? 1 : h;
}
