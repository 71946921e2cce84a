// Float64 references for normalization layers (definitions, biased variance in the output).

/** Normalizes x viewed as [N, C, S] over (n, s) per channel (batch) or over s per (n, c). */
export function normRef(
  N: number,
  C: number,
  S: number,
  perInstance: boolean,
  eps: number,
  affine: boolean,
) {
  return (xs: Float64Array[]): Float64Array => {
    const [x, w, b] = xs;
    const y = new Float64Array(x.length);
    const groups = perInstance ? N * C : C;
    for (let g = 0; g < groups; g++) {
      const idx: number[] = [];
      if (perInstance) { for (let s = 0; s < S; s++) idx.push(g * S + s); }
      else for (let n = 0; n < N; n++) for (let s = 0; s < S; s++) idx.push((n * C + g) * S + s);
      const mean = idx.reduce((a, i) => a + x[i], 0) / idx.length;
      const v = idx.reduce((a, i) => a + (x[i] - mean) ** 2, 0) / idx.length;
      const c = g % C;
      for (const i of idx) {
        const h = (x[i] - mean) / Math.sqrt(v + eps);
        y[i] = affine ? h * w[c] + b[c] : h;
      }
    }
    return y;
  };
}

/** Eval-mode batch norm with fixed running statistics. */
export function batchNormEvalRef(
  C: number,
  S: number,
  rm: Float64Array,
  rv: Float64Array,
  eps: number,
) {
  return (xs: Float64Array[]): Float64Array => {
    const [x, w, b] = xs;
    return x.map((v, i) => {
      const c = Math.floor(i / S) % C;
      return (v - rm[c]) / Math.sqrt(rv[c] + eps) * w[c] + b[c];
    });
  };
}
