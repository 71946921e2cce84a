// FAB's projection (runtime/attacks/fab_projection.ts has the float64 reference): per row, the
// smallest Linf or L2 step d that moves point t onto the hyperplane w.z = b inside [0,1]^d. The
// caller passes c = w.t - b (FAB knows it without cancellation: the linearized margin), and each
// row is scaled by its largest |w| first (the solution does not change; w^2 then neither
// overflows nor underflows in float32).
// Both norms are one problem: coordinate j moves d_j = unit_j * min(delta, cap_j) with
// gain_j = unit_j * w_j per unit of delta, and delta solves g(delta) = sum_j gain_j
// min(delta, cap_j) = |w.t - b| (g is increasing and piecewise linear):
//   Linf: unit = the sign that reduces |w.z - b|, cap = the room to the box, gain = |w|;
//   L2:   unit = s w (s that sign), cap = (box bound) / unit, gain = w^2.
// When the box cannot reach the hyperplane (g(max cap) <= need) every coordinate goes to its
// bound. Otherwise delta is bracketed by bisection on the bit patterns of non-negative floats
// (monotone as u32, so at most 32 steps reach adjacent floats whatever the range), then solved
// exactly on its linear piece. One workgroup per row; every sum is a fixed tree: no atomics,
// the same bits every run.
override WG: u32 = 256u;

struct Params { rows: u32, d: u32, l2: u32 }
@group(0) @binding(0) var<storage, read> T: array<f32>;
@group(0) @binding(1) var<storage, read> Wv: array<f32>;
@group(0) @binding(2) var<storage, read> C: array<f32>; // c = w.t - b per row
@group(0) @binding(3) var<storage, read_write> D: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

var<workgroup> red: array<f32, WG>;
var<workgroup> redBits: array<u32, WG>;

/** The sum of every thread's v (a fixed tree), the same value in every thread. */
fn total(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  let r = workgroupUniformLoad(&red[0]);
  workgroupBarrier(); // nobody overwrites red[0] before every thread has read it
  return r;
}

/** The largest of every thread's non-negative v (as bits), in every thread. */
fn largest(v: u32, lid: u32) -> u32 {
  redBits[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { redBits[lid] = max(redBits[lid], redBits[lid + s]); }
    workgroupBarrier();
  }
  let r = workgroupUniformLoad(&redBits[0]);
  workgroupBarrier();
  return r;
}

/** Coordinate j of the row at `base` (w scaled by `inv`): (unit, cap, gain); gain 0 = the
 * coordinate never moves. */
fn coord(base: u32, j: u32, s: f32, inv: f32) -> vec3f {
  let w = Wv[base + j] * inv;
  let t = T[base + j];
  if (w == 0.0) { return vec3f(0.0); }
  if (p.l2 == 0u) {
    let dir = select(-s, s, w > 0.0);
    return vec3f(dir, select(t, 1.0 - t, dir > 0.0), abs(w));
  }
  let v = s * w;
  let gain = v * v;
  if (gain == 0.0) { return vec3f(0.0); }
  return vec3f(v, select(-t, 1.0 - t, v > 0.0) / v, gain);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid3: vec3u,
        @builtin(num_workgroups) nwg: vec3u) {
  let row = wid.x + wid.y * nwg.x;
  let lid = lid3.x;
  if (row >= p.rows) { return; } // uniform: the whole workgroup leaves
  let base = row * p.d;
  var wBits = 0u;
  for (var j = lid; j < p.d; j += WG) { wBits = max(wBits, bitcast<u32>(abs(Wv[base + j]))); }
  let wmax = bitcast<f32>(largest(wBits, lid));
  let inv = select(1.0, 1.0 / wmax, wmax > 0.0 && wmax < bitcast<f32>(0x7f800000u));
  let c = C[row] * inv;
  if (c == 0.0) {
    for (var j = lid; j < p.d; j += WG) { D[base + j] = 0.0; }
    return;
  }
  let s = select(1.0, -1.0, c > 0.0);
  let need = abs(c);
  var all = 0.0;
  var capBits = 0u;
  for (var j = lid; j < p.d; j += WG) {
    let k = coord(base, j, s, inv);
    if (k.z > 0.0) {
      all += k.z * k.y;
      capBits = max(capBits, select(0u, bitcast<u32>(k.y), k.y > 0.0)); // never -0 or NaN bits
    }
  }
  let reach = total(all, lid);
  var delta = bitcast<f32>(0x7f800000u); // +inf: every coordinate to its bound
  if (reach > need) {
    var lo = 0u;
    var hi = largest(capBits, lid);
    while (hi - lo > 1u) {
      let mid = lo + (hi - lo) / 2u;
      let m = bitcast<f32>(mid);
      var g = 0.0;
      for (var j = lid; j < p.d; j += WG) {
        let k = coord(base, j, s, inv);
        g += k.z * min(m, k.y);
      }
      if (total(g, lid) >= need) { hi = mid; } else { lo = mid; }
    }
    // On (lo, hi] no cap lies strictly inside: caps <= lo are saturated, the rest move.
    let flo = bitcast<f32>(lo);
    var done = 0.0;
    var rest = 0.0;
    for (var j = lid; j < p.d; j += WG) {
      let k = coord(base, j, s, inv);
      if (k.y <= flo) { done += k.z * k.y; } else { rest += k.z; }
    }
    let sd = total(done, lid);
    let sr = total(rest, lid);
    delta = clamp(select(flo, (need - sd) / sr, sr > 0.0), flo, bitcast<f32>(hi));
  }
  for (var j = lid; j < p.d; j += WG) {
    let k = coord(base, j, s, inv);
    D[base + j] = k.x * min(delta, k.y);
  }
}
