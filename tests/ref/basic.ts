// Float64 CPU references for elementwise, reduction and matmul ops.

export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) s[i] = s[i + 1] * shape[i + 1];
  return s;
}

export function broadcast(a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  return Array.from({ length: n }, (_, i) => {
    const da = a[a.length - n + i] ?? 1, db = b[b.length - n + i] ?? 1;
    return da === 1 ? db : da;
  });
}

/** Index into `shape` (broadcast to `out`) of flat output index i. */
export function bIndex(i: number, out: readonly number[], shape: readonly number[]): number {
  const st = stridesOf(shape);
  let idx = 0, r = i;
  for (let d = out.length - 1; d >= 0; d--) {
    const c = r % out[d];
    r = Math.floor(r / out[d]);
    const j = d - (out.length - shape.length);
    if (j >= 0 && shape[j] !== 1) idx += c * st[j];
  }
  return idx;
}

export function binaryRef(
  f: (a: number, b: number) => number,
  sa: readonly number[],
  sb: readonly number[],
) {
  return ([a, b]: Float64Array[]) => {
    const out = broadcast(sa, sb);
    const n = out.reduce((p, d) => p * d, 1);
    const y = new Float64Array(n);
    for (let i = 0; i < n; i++) y[i] = f(a[bIndex(i, out, sa)], b[bIndex(i, out, sb)]);
    return y;
  };
}

export function unaryRef(f: (x: number) => number) {
  return ([x]: Float64Array[]) => x.map(f);
}

/** Reduction over `axes` with a fold starting at init; `post` maps (acc, count). */
export function reduceRef(
  shape: readonly number[],
  axes: number[],
  fold: (acc: number, v: number) => number,
  init: number,
  post: (acc: number, n: number) => number = (a) => a,
) {
  return ([x]: Float64Array[]) => {
    const out = shape.map((d, i) => (axes.includes(i) ? 1 : d));
    const n = out.reduce((p, d) => p * d, 1);
    const acc = new Float64Array(n).fill(init);
    const st = stridesOf(shape);
    const ost = stridesOf(out);
    const cnt = axes.reduce((p, a) => p * shape[a], 1);
    for (let i = 0; i < x.length; i++) {
      let o = 0, r = i;
      for (let d = 0; d < shape.length; d++) {
        const c = Math.floor(r / st[d]);
        r %= st[d];
        if (!axes.includes(d)) o += c * ost[d];
      }
      acc[o] = fold(acc[o], x[i]);
    }
    return acc.map((a) => post(a, cnt));
  };
}

export function matmulRef(M: number, K: number, N: number, batch = 1, ta = false, tb = false) {
  return ([a, b]: Float64Array[]) => {
    const c = new Float64Array(batch * M * N);
    const aB = a.length / (M * K) === 1 ? 0 : M * K;
    const bB = b.length / (K * N) === 1 ? 0 : K * N;
    for (let z = 0; z < batch; z++) {
      for (let m = 0; m < M; m++) {
        for (let n = 0; n < N; n++) {
          let s = 0;
          for (let k = 0; k < K; k++) {
            const av = ta ? a[z * aB + k * M + m] : a[z * aB + m * K + k];
            const bv = tb ? b[z * bB + n * K + k] : b[z * bB + k * N + n];
            s += av * bv;
          }
          c[z * M * N + m * N + n] = s;
        }
      }
    }
    return c;
  };
}
