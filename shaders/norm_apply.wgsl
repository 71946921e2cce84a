// y = (x - mean[c]) * inverseSqrt(var[c] + eps) * w[c % WC] + b[c % WC], data viewed as
// [N, C, S]. Stats holds (mean, var) pairs, from norm_stats (training) or running stats.
override WG: u32 = 256u;
override AFFINE: bool = true;
struct Params { N: u32, C: u32, S: u32, WC: u32, eps: f32, voff: u32 }
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> Mean: array<f32>;
@group(0) @binding(2) var<storage, read> Var: array<f32>;
@group(0) @binding(3) var<storage, read> Wt: array<f32>;
@group(0) @binding(4) var<storage, read> B: array<f32>;
@group(0) @binding(5) var<storage, read_write> Y: array<f32>;
@group(0) @binding(6) var<storage, read> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.N * p.C * p.S) { return; }
  let c = (i / p.S) % p.C;
  var y = (X[i] - Mean[c]) * inverseSqrt(Var[p.voff + c] + p.eps);
  if (AFFINE) { y = y * Wt[c % p.WC] + B[c % p.WC]; }
  Y[i] = y;
}
