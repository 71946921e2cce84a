// Per-group sums for the normalization backward: sum gy and sum gy * xhat (into two buffers) over (n, s),
// xhat = (x - mean) * invstd. The same 256-lane reduction as norm_stats, on 32 threads.
//! include lanes256
struct Params { N: u32, C: u32, S: u32, eps: f32, voff: u32 }
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> GY: array<f32>;
@group(0) @binding(2) var<storage, read> Mean: array<f32>;
@group(0) @binding(3) var<storage, read> Var: array<f32>;
@group(0) @binding(4) var<storage, read_write> SumG: array<f32>;
@group(0) @binding(5) var<storage, read_write> SumGX: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

var<workgroup> pa: array<f32, WG>;
var<workgroup> pb: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  let c = wid.x;
  let m = p.N * p.S;
  let mean = Mean[c];
  let inv = inverseSqrt(Var[p.voff + c] + p.eps);
  var a: Lanes;
  var b: Lanes;
  for (var base = t; base < m; base += 256u) {
    for (var r = 0u; r < R; r++) {
      let k = base + 32u * r;
      if (k < m) {
        let n = k / p.S;
        let i = (n * p.C + c) * p.S + (k - n * p.S);
        let g = GY[i];
        a.v[r] += g;
        b.v[r] += g * (X[i] - mean) * inv;
      }
    }
  }
  pa[t] = fold(a);
  pb[t] = fold(b);
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (t < s) {
      pa[t] += pa[t + s];
      pb[t] += pb[t + s];
    }
  }
  if (t == 0u) {
    SumG[c] = pa[0];
    SumGX[c] = pb[0];
  }
}
