// Input gradient of normalization with batch statistics:
// gx = w * invstd * (gy - sum(gy)/m - xhat * sum(gy*xhat)/m), m = N*S per group.
override WG: u32 = 256u;
override AFFINE: bool = true;
// False in eval mode: running statistics are constants, so gx = w * invstd * gy.
override BATCH: bool = true;
struct Params { N: u32, C: u32, S: u32, WC: u32, eps: f32, voff: u32 }
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> GY: array<f32>;
@group(0) @binding(2) var<storage, read> Mean: array<f32>;
@group(0) @binding(3) var<storage, read> Var: array<f32>;
@group(0) @binding(4) var<storage, read> SumG: array<f32>;
@group(0) @binding(5) var<storage, read> SumGX: array<f32>;
@group(0) @binding(6) var<storage, read> Wt: array<f32>;
@group(0) @binding(7) var<storage, read_write> GX: array<f32>;
@group(0) @binding(8) var<storage, read> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.N * p.C * p.S) { return; }
  let c = (i / p.S) % p.C;
  let m = f32(p.N * p.S);
  let inv = inverseSqrt(Var[p.voff + c] + p.eps);
  let xhat = (X[i] - Mean[c]) * inv;
  var scale = inv;
  if (AFFINE) { scale *= Wt[c % p.WC]; }
  if (BATCH) {
    GX[i] = scale * (GY[i] - SumG[c] / m - xhat * SumGX[c] / m);
  } else {
    GX[i] = scale * GY[i];
  }
}
