// Reduction over any set of axes. Each output element is reduced serially in a fixed order, so
// results are deterministic (no atomics). Long reductions (a full sum, a bias gradient, a norm
// of a large image) are split: thread (i, c) reduces chunk c of output i's reduced range, and a
// second launch reduces the nChunks partials (the chunking depends only on the reduced length
// and the adapter kind, so a given adapter always adds in the same order, whatever the batch). Kept and reduced dimensions are
// passed compacted: (kshape, kstride) for kept axes, (rshape, rstride) for reduced axes,
// strides in elements of the input.
// OP: 0 sum (times scale: mean), 1 max, 2 min, 3 argmax (first maximal index, as f32),
//     4 sum of squares (times scale), 5 max of abs.
override OP: u32 = 0u;
override WG: u32 = 256u;

struct Params {
  nOut: u32, nRed: u32, nk: u32, nr: u32, scale: f32,
  kshape: array<u32, 6>, kstride: array<u32, 6>, rshape: array<u32, 6>, rstride: array<u32, 6>,
  nChunks: u32, chunk: u32,
}
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
@group(0) @binding(2) var<storage, read> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * WG;
  if (t >= p.nOut * p.nChunks) { return; }
  let i = t / p.nChunks;
  let c = t - i * p.nChunks;
  var base = 0u;
  var r = i;
  for (var d = i32(p.nk) - 1; d >= 0; d--) {
    base += (r % p.kshape[d]) * p.kstride[d];
    r = r / p.kshape[d];
  }
  var acc = 0.0;
  if (OP == 1u || OP == 3u) { acc = -3.4028235e38; }
  if (OP == 2u) { acc = 3.4028235e38; }
  var best = 0u;
  // This thread's slice [k, k1) of the flattened reduced range: runs along the innermost
  // reduced axis are walked by pointer increment, the rest by index decomposition.
  let last = p.nr - 1u;
  let inner = p.rshape[last];
  let istride = p.rstride[last];
  var k = c * p.chunk;
  let k1 = min(k + p.chunk, p.nRed);
  while (k < k1) {
    let o = k / inner;
    var off = base;
    var q = o;
    for (var d = i32(last) - 1; d >= 0; d--) {
      off += (q % p.rshape[d]) * p.rstride[d];
      q = q / p.rshape[d];
    }
    let j0 = k - o * inner;
    let j1 = min(inner, j0 + (k1 - k));
    for (var j = j0; j < j1; j++) {
      let v = X[off + j * istride];
      switch OP {
        case 0u: { acc += v; }
        case 1u: { acc = max(acc, v); }
        case 2u: { acc = min(acc, v); }
        case 3u: { if (v > acc) { acc = v; best = k; } }
        case 4u: { acc += v * v; }
        case 5u: { acc = max(acc, abs(v)); }
        default: {}
      }
      k++;
    }
  }
  if (OP == 0u || OP == 4u) { acc *= p.scale; }
  if (OP == 3u) { acc = f32(best); }
  Y[t] = acc;
}
