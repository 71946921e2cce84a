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

// Parameter words (a uniform buffer read as vec4u: llvmpipe loads a word once for all lanes,
// not in a loop over them): nOut 0, nRed 1, nk 2, nr 3, scale 4, then per axis d < 6: kshape
// 5 + d, kstride 11 + d, rshape 17 + d, rstride 23 + d; nChunks 29, chunk 30.
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
@group(0) @binding(2) var<uniform> P: array<vec4u, 8>;

fn word(w: u32) -> u32 { return P[w >> 2u][w & 3u]; }

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * WG;
  if (t >= P[0].x * P[7].y) { return; }
  let i = t / P[7].y;
  let c = t - i * P[7].y;
  var base = 0u;
  var r = i;
  for (var d = i32(P[0].z) - 1; d >= 0; d--) {
    base += (r % word(5u + u32(d))) * word(11u + u32(d));
    r = r / word(5u + u32(d));
  }
  var acc = 0.0;
  if (OP == 1u || OP == 3u) { acc = -3.4028235e38; }
  if (OP == 2u) { acc = 3.4028235e38; }
  var best = 0u;
  // This thread's slice [k, k1) of the flattened reduced range: runs along the innermost
  // reduced axis are walked by pointer increment, the rest by index decomposition.
  let last = P[0].w - 1u;
  let inner = word(17u + last);
  let istride = word(23u + last);
  var k = c * P[7].z;
  let k1 = min(k + P[7].z, P[0].y);
  while (k < k1) {
    let o = k / inner;
    var off = base;
    var q = o;
    for (var d = i32(last) - 1; d >= 0; d--) {
      off += (q % word(17u + u32(d))) * word(23u + u32(d));
      q = q / word(17u + u32(d));
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
  if (OP == 0u || OP == 4u) { acc *= bitcast<f32>(P[1].x); }
  if (OP == 3u) { acc = f32(best); }
  Y[t] = acc;
}
