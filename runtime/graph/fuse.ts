// Elementwise fusion. An elementwise op does not launch a kernel: its result is a pending
// expression over realized tensors (leaves), scalars and other pending expressions, which are
// inlined. The expression becomes one generated WGSL kernel when something reads the tensor
// (another kind of kernel, a readback, a view); a pending tensor disposed unread never runs
// (dead-code elimination). A chain like bn-apply -> add -> relu, or PGD's sign -> step ->
// project -> clamp, is one pass over memory instead of one per op.
//
// Order: a kernel or upload that writes a buffer first realizes the pending expressions that
// read it (Engine.beforeWrite), so in-place updates (optimizer, running statistics) never
// change a value computed later than eager execution would have computed it.
// ATOP_FUSE=off realizes every op at once: one kernel per op, for debugging.

import { engine, f32bits, grid1d } from "../engine.ts";
import { sameShape } from "../ops/util.ts";
import { keep, type Pending, type Shape, shapeSize, Tensor } from "../tensor.ts";
import { PRELUDE, template, vectorized } from "../ops/table.ts";

/** Distinct leaf bindings of one kernel: the adapter's storage buffers per stage less the
 * output and the parameters (6 at WebGPU's default limit of 8), at most 14. */
let maxLeaves = 0;
function leafLimit(): number {
  if (maxLeaves === 0) {
    const lim = engine().device.limits.maxStorageBuffersPerShaderStage;
    maxLeaves = Math.max(2, Math.min(14, lim - 2));
  }
  return maxLeaves;
}
/** Operation nodes of one kernel; beyond it operands are realized first. */
const MAX_NODES = 40;
const MAX_DIMS = 6;
const WG = 256;

type Node =
  // A realized buffer, kept alive by the holds of every expression that reads it.
  | { k: "leaf"; buf: GPUBuffer; strides: number[] | null }
  | { k: "const"; v: number }
  | { k: "op"; op: string; args: Node[]; scalars: number[] };

function fuseMode(): boolean {
  try {
    return Deno.env.get("ATOP_FUSE") !== "off";
  } catch {
    return true;
  }
}
let fusing = fuseMode();
let vectorizing = true;

/** Turns the vec4 kernels on or off (tests compare both); returns the previous setting. */
export function setVectorize(on: boolean): boolean {
  const prev = vectorizing;
  vectorizing = on;
  return prev;
}

/** Turns fusion on or off (tests compare both); returns the previous setting. */
export function setFusion(on: boolean): boolean {
  const prev = fusing;
  fusing = on;
  return prev;
}

/** Pending tensors by the buffers their expressions read. */
const readers = new Map<GPUBuffer, Set<Tensor>>();
let hooked = false;
function hook(): void {
  if (hooked) return;
  hooked = true;
  engine().beforeWrite = (buf) => {
    const rs = readers.get(buf);
    if (!rs) return;
    for (const t of [...rs]) t.pending?.realize();
  };
}

const stats = { kernels: 0, fusedOps: 0, dropped: 0 };
/** Counts for explain and tests: kernels launched, ops folded into them, ops never run. */
export function fusionStats(): Readonly<typeof stats> {
  return { ...stats };
}

function contiguous(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = shape[i] === 1 ? 0 : acc;
    acc *= shape[i];
  }
  return s;
}

/** Strides over `out` of a value stored contiguously with shape `shape` (broadcast dims 0). */
function broadcastStrides(shape: Shape, out: Shape): number[] {
  const own = contiguous(shape);
  const st = new Array<number>(out.length).fill(0);
  for (let i = 0; i < shape.length; i++) {
    const o = out.length - shape.length + i;
    st[o] = shape[i] === 1 && out[o] !== 1 ? 0 : own[i];
  }
  return st;
}

class Expr implements Pending {
  constructor(
    readonly out: Tensor,
    readonly root: Node,
    /** Retained views of the leaves (kept alive until the kernel ran or was dropped). */
    readonly holds: Tensor[],
    readonly ops: number,
  ) {
    for (const h of holds) {
      let set = readers.get(h.rawBuffer);
      if (!set) readers.set(h.rawBuffer, set = new Set());
      set.add(out);
    }
  }

  realize(): void {
    if (this.out.pending !== this) return;
    // Unregister first, so the write hook of this very launch does not see it.
    this.#unregister();
    launch(this.out, this.root, this.ops);
    for (const h of this.holds) h.dispose();
  }

  #unregister(): void {
    this.out.pending = null;
    for (const h of this.holds) {
      const set = readers.get(h.rawBuffer);
      set?.delete(this.out);
      if (set?.size === 0) readers.delete(h.rawBuffer);
    }
  }

  drop(): void {
    if (this.out.pending !== this) return;
    stats.dropped += this.ops;
    this.#unregister();
    for (const h of this.holds) h.dispose();
  }
}

/** The node of an operand as seen from an expression of shape `out`. */
function operandNode(x: Tensor | number, out: Shape, holds: Map<GPUBuffer, Tensor>): Node {
  if (typeof x === "number") return { k: "const", v: x };
  const p = x.pending;
  if (p instanceof Expr) {
    for (const h of p.holds) if (!holds.has(h.rawBuffer)) holds.set(h.rawBuffer, h);
    return sameShape(x.shape, out) ? p.root : remap(p.root, x.shape, out, new Map());
  }
  const buf = x.buffer; // realizes a pending value of another kind (none today)
  if (!holds.has(buf)) holds.set(buf, x);
  return {
    k: "leaf",
    buf,
    strides: sameShape(x.shape, out) ? null : broadcastStrides(x.shape, out),
  };
}

/** Re-expresses a node of shape `from` inside an expression of shape `to` (broadcasting). */
function remap(n: Node, from: Shape, to: Shape, memo: Map<Node, Node>): Node {
  const hit = memo.get(n);
  if (hit) return hit;
  let r: Node;
  if (n.k === "const") r = n;
  else if (n.k === "leaf") {
    const own = n.strides ?? contiguous(from);
    const st = new Array<number>(to.length).fill(0);
    for (let i = 0; i < from.length; i++) {
      const o = to.length - from.length + i;
      st[o] = from[i] === 1 && to[o] !== 1 ? 0 : own[i];
    }
    r = { k: "leaf", buf: n.buf, strides: st };
  } else r = { ...n, args: n.args.map((a) => remap(a, from, to, memo)) };
  memo.set(n, r);
  return r;
}

function countOps(n: Node, seen: Set<Node>): number {
  if (seen.has(n) || n.k !== "op") return 0;
  seen.add(n);
  return 1 + n.args.reduce((s, a) => s + countOps(a, seen), 0);
}

/** Leaf bindings a node needs: distinct (buffer, strides) pairs. */
function leafKeys(n: Node, out: Set<string>, seen: Set<Node>, ids: Map<GPUBuffer, number>): void {
  if (seen.has(n)) return;
  seen.add(n);
  if (n.k === "leaf") {
    const b = n.buf;
    if (!ids.has(b)) ids.set(b, ids.size);
    out.add(`${ids.get(b)}:${n.strides ?? "flat"}`);
  } else if (n.k === "op") { for (const a of n.args) leafKeys(a, out, seen, ids); }
}

/** An elementwise op: a pending tensor (or, with fusion off or past the size limits of one
 * kernel, a computed one). Shapes broadcast NumPy-style; `shape` is the result's. */
export function elementwise(
  op: string,
  operands: (Tensor | number)[],
  scalars: number[],
  shape: Shape,
): Tensor {
  hook();
  let holds = new Map<GPUBuffer, Tensor>();
  let args = operands.map((x) => operandNode(x, shape, holds));
  let root: Node = { k: "op", op, args, scalars };
  let ops = countOps(root, new Set());
  const leaves = new Set<string>();
  leafKeys(root, leaves, new Set(), new Map());
  if (ops > MAX_NODES || leaves.size > leafLimit()) {
    // Too big for one kernel: compute the pending operands, then this op on their values.
    for (const x of operands) if (typeof x !== "number") x.pending?.realize();
    holds = new Map();
    args = operands.map((x) => operandNode(x, shape, holds));
    root = { k: "op", op, args, scalars };
    ops = 1;
  }
  const out = Tensor.empty(shape);
  if (out.size === 0) return out;
  const views = [...holds.values()].map((t) => keep(t.view(t.shape)));
  const e = new Expr(out, root, views, ops);
  out.pending = e;
  if (!fusing) e.realize();
  return out;
}

// ---- code generation ------------------------------------------------------------------------

interface Compiled {
  code: string;
  /** Per leaf binding: the buffer and strides (null = flat index). */
  leaves: { buf: GPUBuffer; strides: number[] | null }[];
  consts: number[];
  /** Index-plan words (after n). */
  layout: number[];
  /** Set for the 2-D packed kernel (pack3): its grid comes from the layout. */
  grid?: PackLayout;
  /** Outputs per thread (4: vec4 lanes). */
  lanes?: number;
}

function fill(tpl: string, args: string[], scalars: string[]): string {
  return tpl.replace(
    /\{(\d|a|b)\}/g,
    (_, k: string) => k === "a" ? scalars[0] : k === "b" ? scalars[1] : args[Number(k)],
  );
}

function f32Literal(i: number, vec = false): string {
  return vec ? `vec4f(bitcast<f32>(P[${i}]))` : `bitcast<f32>(P[${i}])`;
}

const codeCache = new Map<string, string>();

/** How a kernel maps its output index to the expression's flat index: the identity, or the
 * packed rows of packRows4 (ops/matmul.ts), zeros outside. */
type OutMap = "same" | "pack" | "pack3";

/** The index arithmetic of the broadcast leaves: the output's dims collapsed where every
 * leaf's strides allow (PyTorch's TensorIterator does the same), and only the coordinates some
 * leaf needs. A per-channel leaf of [N,C,H,W] costs one division and one remainder, as a
 * hand-written kernel would. */
interface IndexPlan {
  /** Per kept coordinate: elements per step of it, its size (0: outermost, no remainder). */
  coords: { inner: number; size: number }[];
  /** Per broadcast leaf: its stride along each kept coordinate. */
  strides: number[][];
}

function indexPlan(shape: Shape, leafStrides: number[][]): IndexPlan {
  // Drop size-1 dims, then merge d with d+1 when every leaf steps contiguously across them.
  let dims = shape.map((size, d) => ({ size, st: leafStrides.map((s) => s[d] ?? 0) }))
    .filter((d) => d.size !== 1);
  const merged: typeof dims = [];
  for (const d of dims) {
    const prev = merged[merged.length - 1];
    if (prev && prev.st.every((s, k) => s === d.st[k] * d.size)) {
      prev.size *= d.size;
      prev.st = d.st;
    } else merged.push({ size: d.size, st: [...d.st] });
  }
  dims = merged;
  const coords: IndexPlan["coords"] = [];
  const strides: number[][] = leafStrides.map(() => []);
  let inner = 1;
  for (let d = dims.length - 1; d >= 0; d--) {
    if (dims[d].st.some((s) => s !== 0)) {
      coords.unshift({ inner, size: d === 0 ? 0 : dims[d].size });
      dims[d].st.forEach((s, k) => strides[k].unshift(s));
    }
    inner *= dims[d].size;
  }
  return { coords, strides };
}

function compile(
  root: Node,
  shape: Shape,
  outMap: OutMap = "same",
  pk?: PackLayout,
): Compiled | null {
  const leaves: Compiled["leaves"] = [];
  const leafIndex = new Map<string, number>();
  const consts: number[] = [];
  const lines: string[] = [];
  const names = new Map<Node, string>();
  // Parameter words: [n, index plan..., consts..., pack...]; consts are named by placeholders
  // until the plan's size is known.
  const visit = (n: Node): string => {
    const hit = names.get(n);
    if (hit) return hit;
    let name: string;
    if (n.k === "const") {
      consts.push(n.v);
      name = `@C${consts.length - 1}@`;
    } else if (n.k === "leaf") {
      const key = `${leafIdOf(n.buf)}:${n.strides ?? "flat"}`;
      let li = leafIndex.get(key);
      if (li === undefined) {
        li = leaves.length;
        leaves.push({ buf: n.buf, strides: n.strides });
        leafIndex.set(key, li);
      }
      name = `x${li}`;
    } else {
      const tpl = template(n.op);
      const args = n.args.map(visit);
      const sc = n.scalars.map((v) => {
        consts.push(v);
        return `@C${consts.length - 1}@`;
      });
      name = `v${lines.length}`;
      lines.push(`  let ${name} = ${fill(tpl.expr, args, sc)};`);
    }
    names.set(n, name);
    return name;
  };
  const result = visit(root);
  const bleaves = leaves.filter((l) => l.strides !== null);
  if (outMap === "pack3") return compilePack3(shape, pk!, leaves, consts, lines, result);
  const plan = indexPlan(shape, bleaves.map((l) => l.strides!));
  const nc = plan.coords.length;
  // vec4 lanes (4 outputs per thread) when a row of the batch holds a multiple of 4 values (a
  // choice independent of the batch size) and every broadcast operand is constant over each
  // aligned group of 4 (its innermost coordinate steps by a multiple of 4).
  const perRow = shape.length ? shape.slice(1).reduce((a, b) => a * b, 1) : 1;
  const innermost = plan.coords.length ? plan.coords[plan.coords.length - 1].inner : 4;
  const vec = vectorizing && outMap === "same" && shape.length >= 2 && perRow % 4 === 0 &&
    innermost % 4 === 0;
  // Layout words: per coordinate (inner, size), then per broadcast leaf its nc strides.
  const layout: number[] = [];
  for (const c of plan.coords) layout.push(c.inner, c.size);
  for (const st of plan.strides) layout.push(...st);
  const constBase = 1 + layout.length;
  const lit = (str: string) =>
    str.replace(/@C(\d+)@/g, (_, i: string) => f32Literal(constBase + Number(i), vec));
  let body = lit(vec ? vectorized(lines.join("\n")) : lines.join("\n"));
  const res = lit(result);
  const loads: string[] = [];
  let bi = 0;
  leaves.forEach((l, li) => {
    if (l.strides === null) loads.push(`  let x${li} = L${li}[${vec ? "t" : "i"}];`);
    else {
      const s = 1 + 2 * nc + bi++ * nc;
      const terms = plan.coords.map((_, d) => `c${d} * P[${s + d}]`).join(" + ");
      const load = `L${li}[${terms || "0u"}]`;
      loads.push(`  let x${li} = ${vec ? `vec4f(${load})` : load};`);
    }
  });
  const coordLines = plan.coords.map((c, d) =>
    c.size === 0
      ? `  let c${d} = i / P[${1 + 2 * d}];`
      : `  let c${d} = (i / P[${1 + 2 * d}]) % P[${2 + 2 * d}];`
  );
  body = [...coordLines, ...loads].join("\n") + "\n" + body;
  const key = `${outMap}|${vec}|${plan.coords.map((c) => (c.size === 0 ? "o" : "c")).join("")}|` +
    `${leaves.map((l) => (l.strides ? "b" : "f")).join("")}|${body}|${res}`;
  let code = codeCache.get(key);
  if (!code) {
    const binds = leafBindings(leaves, vec);
    // Pack: P[k..k+6] = rows (batch*O), O, I, I4, sb, so, si after the constants.
    const k = constBase + consts.length;
    const head = vec
      ? `  let t = gid.x + gid.y * nwg.x * WG;\n  if (t >= P[0]) { return; }\n` +
        `  let i = 4u * t;\n  let j = t;\n`
      : outMap === "same"
      ? `  let i = gid.x + gid.y * nwg.x * WG;\n  if (i >= P[0]) { return; }\n  let j = i;\n`
      : `  let j = gid.x + gid.y * nwg.x * WG;\n  if (j >= P[0]) { return; }\n` +
        `  let row = j / P[${k + 3}];\n  let col = j - row * P[${k + 3}];\n` +
        `  if (row >= P[${k}] || col >= P[${k + 2}]) {\n    Y[j] = 0.0;\n    return;\n  }\n` +
        `  let b = row / P[${k + 1}];\n  let o = row - b * P[${k + 1}];\n` +
        `  let i = b * P[${k + 4}] + o * P[${k + 5}] + col * P[${k + 6}];\n`;
    code = uniformWords(`// fused elementwise kernel (runtime/graph/fuse.ts)
override WG: u32 = ${WG}u;
${binds}
@group(0) @binding(${leaves.length}) var<storage, read_write> Y: array<${vec ? "vec4f" : "f32"}>;
@group(0) @binding(${leaves.length + 1}) var<uniform> P: array<vec4u, @NP@>;
${PRELUDE}
@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
${head}${body}
  Y[j] = ${res};
}
`);
    codeCache.set(key, code);
  }
  return { code, leaves, consts, layout, lanes: vec ? 4 : 1 };
}

/** Per pack axis (b, o, col), the strides a broadcast leaf takes along it, when its index is
 * linear in (b, o, col): each axis moves a separate group of the expression's digits (no
 * carries between axes) and the leaf's offset grows by a fixed step along each. Null when not
 * (the generic packed kernel then decomposes indices). */
const linearCache = new Map<string, number[] | null>();
function packAxisStrides(shape: Shape, st: number[], pk: PackLayout): number[] | null {
  const key = `${shape}|${st}|${pk.rows / pk.O},${pk.O},${pk.I},${pk.sb},${pk.so},${pk.si}`;
  if (linearCache.has(key)) return linearCache.get(key)!;
  const size = shape.reduce((a, b) => a * b, 1);
  const touched: Set<number>[] = [];
  const out: number[] = [];
  let ok = true;
  for (const [stride, range] of [[pk.sb, pk.rows / pk.O], [pk.so, pk.O], [pk.si, pk.I]]) {
    const dims = new Set<number>();
    let step = 0;
    for (let k = 0; k < range && ok; k++) {
      let f = k * stride;
      if (f >= size && k > 0) {
        ok = false;
        break;
      }
      let off = 0;
      for (let d = shape.length - 1; d >= 0; d--) {
        const c = f % shape[d];
        f = Math.floor(f / shape[d]);
        if (c !== 0) dims.add(d);
        off += c * (st[d] ?? 0);
      }
      if (k === 1) step = off;
      if (off !== k * step) ok = false;
    }
    if (!ok) break;
    for (const t of touched) for (const d of dims) if (t.has(d)) ok = false;
    touched.push(dims);
    out.push(step);
  }
  const r = ok ? out : null;
  linearCache.set(key, r);
  return r;
}

/** The packed kernel without index division: thread (t, b) of a 2-D grid handles pixel
 * o = t % O and column col = t / O of image b (shifts when O is a power of two). Consecutive
 * threads read consecutive pixels of one channel (contiguous loads) and write a column of the
 * channels-last rows (stride I4, small): the transpose a pack is. */
function compilePack3(
  shape: Shape,
  pk: PackLayout,
  leaves: Compiled["leaves"],
  consts: number[],
  lines: string[],
  result: string,
): Compiled | null {
  const bstrides: number[][] = [];
  for (const l of leaves) {
    if (l.strides === null) continue;
    const a = packAxisStrides(shape, l.strides, pk);
    if (!a) return null;
    bstrides.push(a);
  }
  // vec4 lanes: a thread takes 4 consecutive pixels of one channel (one vec4 load per operand
  // that varies along pixels, a splat for those that do not) and writes 4 packed rows.
  const vec = vectorizing && pk.so === 1 && pk.O % 4 === 0 && pk.sb % 4 === 0 &&
    pk.si % 4 === 0 && bstrides.every((a) => a[1] === 0);
  const per = vec ? pk.O / 4 : pk.O;
  const pow2 = (per & (per - 1)) === 0;
  // Words: [per*I4, O, per (or its log2), I4, rows, I, sb, so, si, rowsTotal, leaf strides x3]
  const layout = [
    pk.O,
    pow2 ? Math.log2(per) : per,
    pk.I4,
    pk.rows,
    pk.I,
    pk.sb,
    pk.so,
    pk.si,
    pk.total / pk.I4,
  ];
  for (const a of bstrides) layout.push(...a);
  const constBase = 1 + layout.length;
  const lit = (str: string) =>
    str.replace(/@C(\d+)@/g, (_, i: string) => f32Literal(constBase + Number(i), vec));
  let bi = 0;
  const loads = leaves.map((l, li) => {
    if (l.strides === null) return `  let x${li} = L${li}[${vec ? "i / 4u" : "i"}];`;
    const s = 10 + 3 * bi++;
    const load = `L${li}[b * P[${s}] + o * P[${s + 1}] + col * P[${s + 2}]]`;
    return `  let x${li} = ${vec ? `vec4f(${load})` : load};`;
  });
  const lane = vec ? "4u * " : "";
  const split = pow2
    ? `  let col = t >> P[2];\n  let o = ${lane}(t & ((1u << P[2]) - 1u));\n`
    : `  let col = t / P[2];\n  let o = ${lane}(t - col * P[2]);\n`;
  const zero = vec
    ? `    for (var e = 0u; e < 4u; e++) {\n      if (row + e < P[9]) { Y[j + e * P[3]] = 0.0; }\n    }\n`
    : `    Y[j] = 0.0;\n`;
  const head = `  let t = gid.x + gid.z * nwg.x * WG;\n  if (t >= P[0]) { return; }\n` +
    `  let b = gid.y;\n${split}  let row = b * P[1] + o;\n` +
    `  if (row >= P[9]) { return; }\n  let j = row * P[3] + col;\n` +
    `  if (row >= P[4] || col >= P[5]) {\n${zero}    return;\n  }\n` +
    `  let i = b * P[6] + o * P[7] + col * P[8];\n`;
  const body = loads.join("\n") + "\n" + lit(vec ? vectorized(lines.join("\n")) : lines.join("\n"));
  const res = lit(result);
  const store = vec
    ? `  let r = ${res};\n  Y[j] = r.x;\n  Y[j + P[3]] = r.y;\n  Y[j + 2u * P[3]] = r.z;\n` +
      `  Y[j + 3u * P[3]] = r.w;`
    : `  Y[j] = ${res};`;
  const key = `pack3|${vec}|${pow2}|${leaves.map((l) => (l.strides ? "b" : "f")).join("")}|` +
    `${body}|${res}`;
  let code = codeCache.get(key);
  if (!code) {
    const binds = leafBindings(leaves, vec);
    code = uniformWords(`// fused elementwise kernel into a packed layout (runtime/graph/fuse.ts)
override WG: u32 = ${WG}u;
${binds}
@group(0) @binding(${leaves.length}) var<storage, read_write> Y: array<f32>;
@group(0) @binding(${leaves.length + 1}) var<uniform> P: array<vec4u, @NP@>;
${PRELUDE}
@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
${head}${body}
${store}
}
`);
    codeCache.set(key, code);
  }
  return { code, leaves, consts, layout, grid: pk, lanes: vec ? 4 : 1 };
}

/** The parameter words as a uniform array of vec4u, word k read as P[k / 4][k % 4]: every index
 * is a constant, so llvmpipe loads each word once for all SIMD lanes (a storage-buffer word is a
 * loop over the lanes per load; BENCHMARKS.md, "Parameters in uniform buffers"). The array is as
 * long as the highest word the code reads (the launch binds at least that many). */
function uniformWords(code: string): string {
  let top = 0;
  const body = code.replace(/\bP\[(\d+)\]/g, (_, w: string) => {
    const k = Number(w);
    top = Math.max(top, k);
    return `P[${k >> 2}][${k & 3}]`;
  });
  return body.replace("@NP@", String((top >> 2) + 1));
}

/** The leaf bindings of a generated kernel: flat leaves as vec4f arrays in vec4 kernels. */
function leafBindings(leaves: Compiled["leaves"], vec: boolean): string {
  return leaves.map((l, li) =>
    `@group(0) @binding(${li}) var<storage, read> L${li}: array<${
      vec && l.strides === null ? "vec4f" : "f32"
    }>;`
  ).join("\n");
}

const leafIds = new WeakMap<GPUBuffer, number>();
let nextLeafId = 0;
function leafIdOf(b: GPUBuffer): number {
  let id = leafIds.get(b);
  if (id === undefined) leafIds.set(b, id = nextLeafId++);
  return id;
}

/** Layout of a packed output (ops/matmul.ts packRows4): out[b*O + o, i] = x[b*sb + o*so +
 * i*si] for i < I, zeros up to I4 and in the rows from `rows` to `total / I4`. */
export interface PackLayout {
  rows: number;
  O: number;
  I: number;
  I4: number;
  sb: number;
  so: number;
  si: number;
  total: number;
}

/** True when t is a pending fused expression (a pack can compute it in place of a copy). */
export function isPendingExpr(t: Tensor): boolean {
  return t.pending instanceof Expr;
}

/** Computes the pending expression of `src` straight into the packed layout of `out` (one
 * kernel instead of realize + pack); `src` itself stays pending. */
export function realizePacked(src: Tensor, out: Tensor, pk: PackLayout): void {
  const e = src.pending;
  if (!(e instanceof Expr)) throw new Error("internal: realizePacked on a computed tensor");
  launch(src, e.root, e.ops, { out, pk });
}

function launch(
  src: Tensor,
  root: Node,
  ops: number,
  packed?: { out: Tensor; pk: PackLayout },
): void {
  const shape = src.shape;
  if (shape.length > MAX_DIMS) {
    throw new Error(`elementwise: at most ${MAX_DIMS} dims, got [${shape}]`);
  }
  const out = packed?.out ?? src;
  let n = packed ? packed.pk.total : shapeSize(shape);
  const c = (packed ? compile(root, shape, "pack3", packed.pk) : null) ??
    compile(root, shape, packed ? "pack" : "same")!;
  if (c.lanes === 4 && !c.grid) n /= 4;
  let workgroups: [number, number?, number?] = grid1d(n, WG);
  if (c.grid) {
    // 2-D: x over one image's packed rows (O * I4), y over images (and the zero rows).
    const p = c.grid;
    n = (p.O / (c.lanes ?? 1)) * p.I4;
    const gx = Math.ceil(n / WG), gz = Math.ceil(gx / 65535);
    workgroups = [Math.ceil(gx / gz), Math.ceil(p.total / p.I4 / p.O), gz];
  }
  const params: number[] = [n, ...c.layout];
  for (const v of c.consts) params.push(f32bits(v));
  if (packed && !c.grid) {
    const p = packed.pk;
    params.push(p.rows, p.O, p.I, p.I4, p.sb, p.so, p.si);
  }
  stats.kernels++;
  stats.fusedOps += ops;
  engine().dispatch({
    kernel: (packed ? "pack+" : "") +
      (ops > 1 ? `fused(${ops}):${opName(root)}` : `fused:${opName(root)}`),
    code: c.code,
    constants: { WG },
    buffers: [...c.leaves.map((l) => l.buf), out.rawBuffer],
    params,
    workgroups,
  });
}

function opName(n: Node): string {
  return n.k === "op" ? n.op : n.k;
}
