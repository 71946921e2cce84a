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
  return ([x]: Float64Array[]): Float64Array => Float64Array.from({ length: n }, (_, i) => x[i * k + idx[i]]);
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
