// Float64 CPU references for layout (concat, slice, pad2d, permute, gather, sortDesc), losses
// and pooling. Written from the definitions (PyTorch semantics), loop by loop.

type Shape = readonly number[];

const size = (s: Shape) => s.reduce((p, d) => p * d, 1);

function strides(s: Shape): number[] {
  const st = new Array(s.length).fill(1);
  for (let i = s.length - 2; i >= 0; i--) st[i] = st[i + 1] * s[i + 1];
  return st;
}

function coords(i: number, s: Shape): number[] {
  const c = new Array(s.length).fill(0);
  for (let d = s.length - 1; d >= 0; d--) {
    c[d] = i % s[d];
    i = Math.floor(i / s[d]);
  }
  return c;
}

function offset(c: number[], s: Shape): number {
  const st = strides(s);
  return c.reduce((p, v, i) => p + v * st[i], 0);
}

// ---------------------------------------------------------------- layout

export function concatRef(shapes: Shape[], axis: number) {
  return (xs: Float64Array[]): Float64Array => {
    const out = [...shapes[0]];
    out[axis] = shapes.reduce((p, s) => p + s[axis], 0);
    const y = new Float64Array(size(out));
    let off = 0;
    shapes.forEach((s, k) => {
      for (let i = 0; i < size(s); i++) {
        const c = coords(i, s);
        c[axis] += off;
        y[offset(c, out)] = xs[k][i];
      }
      off += s[axis];
    });
    return y;
  };
}

export function sliceRef(shape: Shape, axis: number, start: number, end: number) {
  return ([x]: Float64Array[]): Float64Array => {
    const out = shape.map((d, i) => (i === axis ? end - start : d));
    const y = new Float64Array(size(out));
    for (let i = 0; i < y.length; i++) {
      const c = coords(i, out);
      c[axis] += start;
      y[i] = x[offset(c, shape)];
    }
    return y;
  };
}

export function pad2dRef(shape: Shape, pads: readonly number[], value: number) {
  const [l, r, t, b] = pads;
  return ([x]: Float64Array[]): Float64Array => {
    const nd = shape.length;
    const out = shape.map((d, i) => (i === nd - 1 ? d + l + r : i === nd - 2 ? d + t + b : d));
    const y = new Float64Array(size(out)).fill(value);
    for (let i = 0; i < x.length; i++) {
      const c = coords(i, shape);
      c[nd - 1] += l;
      c[nd - 2] += t;
      y[offset(c, out)] = x[i];
    }
    return y;
  };
}

export function permuteRef(shape: Shape, dims: readonly number[]) {
  return ([x]: Float64Array[]): Float64Array => {
    const out = dims.map((d) => shape[d]);
    const y = new Float64Array(x.length);
    for (let i = 0; i < x.length; i++) {
      const c = coords(i, out);
      const src = new Array(shape.length);
      dims.forEach((d, k) => (src[d] = c[k]));
      y[i] = x[offset(src, shape)];
    }
    return y;
  };
}

/** x [N,K] picked at fixed integer indices. */
export function gatherRef(n: number, k: number, idx: readonly number[]) {
  return ([x]: Float64Array[]): Float64Array =>
    Float64Array.from({ length: n }, (_, i) => x[i * k + idx[i]]);
}

/** Descending sort along `axis`; ties in index order. */
export function sortDescRef(shape: Shape, axis: number) {
  return ([x]: Float64Array[]): Float64Array => {
    const y = new Float64Array(x.length);
    const st = strides(shape);
    const K = shape[axis];
    for (let i = 0; i < x.length; i++) {
      const c = coords(i, shape);
      if (c[axis] !== 0) continue;
      const pos = Array.from({ length: K }, (_, k) => i + k * st[axis]);
      const order = pos.map((p, k) => [x[p], k]).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
      order.forEach(([v], k) => (y[pos[k]] = v));
    }
    return y;
  };
}

// ---------------------------------------------------------------- losses

export type RefReduction = "mean" | "sum" | "none";

function reduceRef(v: Float64Array, reduction: RefReduction): Float64Array {
  if (reduction === "none") return v;
  const s = v.reduce((p, x) => p + x, 0);
  return Float64Array.of(reduction === "mean" ? s / v.length : s);
}

function logSumExp(x: Float64Array, off: number, k: number): number {
  let m = -Infinity;
  for (let i = 0; i < k; i++) m = Math.max(m, x[off + i]);
  let s = 0;
  for (let i = 0; i < k; i++) s += Math.exp(x[off + i] - m);
  return m + Math.log(s);
}

/** Row-wise (last axis, length k) log-softmax or softmax. */
export function softmaxRef(k: number, log: boolean) {
  return ([x]: Float64Array[]): Float64Array => {
    const y = new Float64Array(x.length);
    for (let off = 0; off < x.length; off += k) {
      const lse = logSumExp(x, off, k);
      for (let i = 0; i < k; i++) y[off + i] = log ? x[off + i] - lse : Math.exp(x[off + i] - lse);
    }
    return y;
  };
}

export function crossEntropyRef(k: number, labels: readonly number[], reduction: RefReduction) {
  return ([z]: Float64Array[]): Float64Array =>
    reduceRef(
      Float64Array.from(labels, (y, n) => logSumExp(z, n * k, k) - z[n * k + y]),
      reduction,
    );
}

export function l1Ref(reduction: RefReduction) {
  return ([a, b]: Float64Array[]) => reduceRef(a.map((v, i) => Math.abs(v - b[i])), reduction);
}

export function mseRef(reduction: RefReduction) {
  return ([a, b]: Float64Array[]) => reduceRef(a.map((v, i) => (v - b[i]) ** 2), reduction);
}

export function hingeDRef([real, fake]: Float64Array[]): Float64Array {
  const m = (v: Float64Array) => v.reduce((p, x) => p + x, 0) / v.length;
  return Float64Array.of(
    m(real.map((x) => Math.max(0, 1 - x))) + m(fake.map((x) => Math.max(0, 1 + x))),
  );
}

export function hingeGRef([fake]: Float64Array[]): Float64Array {
  return Float64Array.of(-fake.reduce((p, x) => p + x, 0) / fake.length);
}

/** Per-row margin-type losses from the definitions (descending sort of each row). */
export function marginFamilyRef(
  kind: "dlr" | "dlrTargeted" | "margin",
  k: number,
  labels: readonly number[],
  targets: readonly number[] = [],
) {
  return ([z]: Float64Array[]): Float64Array =>
    Float64Array.from(labels, (y, n) => {
      const row = Array.from(z.subarray(n * k, (n + 1) * k));
      const s = [...row].sort((a, b) => b - a);
      const maxOther = Math.max(...row.filter((_, i) => i !== y));
      if (kind === "margin") return row[y] - maxOther;
      if (kind === "dlr") return -(row[y] - maxOther) / (s[0] - s[2] + 1e-12);
      return -(row[y] - row[targets[n]]) / (s[0] - (s[2] + s[3]) / 2 + 1e-12);
    });
}

// ---------------------------------------------------------------- pooling

export interface PoolRefGeometry {
  N: number;
  C: number;
  H: number;
  W: number;
  kernel: [number, number];
  stride: [number, number];
  padding: [number, number];
}

export function poolOutSize(g: PoolRefGeometry): [number, number] {
  return [
    Math.floor((g.H + 2 * g.padding[0] - g.kernel[0]) / g.stride[0]) + 1,
    Math.floor((g.W + 2 * g.padding[1] - g.kernel[1]) / g.stride[1]) + 1,
  ];
}

/** Max (padding ignored, i.e. -inf) or average (padding counted as zeros) pooling. */
export function pool2dRef(g: PoolRefGeometry, kind: "max" | "avg") {
  const [Ho, Wo] = poolOutSize(g);
  const [KH, KW] = g.kernel;
  return ([x]: Float64Array[]): Float64Array => {
    const y = new Float64Array(g.N * g.C * Ho * Wo);
    for (let pl = 0; pl < g.N * g.C; pl++) {
      for (let oh = 0; oh < Ho; oh++) {
        for (let ow = 0; ow < Wo; ow++) {
          let best = -Infinity, acc = 0;
          for (let kh = 0; kh < KH; kh++) {
            for (let kw = 0; kw < KW; kw++) {
              const ih = oh * g.stride[0] - g.padding[0] + kh;
              const iw = ow * g.stride[1] - g.padding[1] + kw;
              if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
              const v = x[(pl * g.H + ih) * g.W + iw];
              best = Math.max(best, v);
              acc += v;
            }
          }
          y[(pl * Ho + oh) * Wo + ow] = kind === "max" ? best : acc / (KH * KW);
        }
      }
    }
    return y;
  };
}

export function globalAvgPoolRef(n: number, c: number, s: number) {
  return ([x]: Float64Array[]): Float64Array =>
    Float64Array.from({ length: n * c }, (_, i) => {
      let acc = 0;
      for (let j = 0; j < s; j++) acc += x[i * s + j];
      return acc / s;
    });
}
