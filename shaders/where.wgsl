// O = C != 0 ? A : B, with broadcasting of all three operands to the output shape.
override WG: u32 = 256u;

struct Params {
  n: u32, nd: u32, shape: array<u32, 6>,
  sc: array<u32, 6>, sa: array<u32, 6>, sb: array<u32, 6>,
}
@group(0) @binding(0) var<storage, read> C: array<f32>;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> O: array<f32>;
@group(0) @binding(4) var<storage, read> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  var ic = 0u;
  var ia = 0u;
  var ib = 0u;
  var r = i;
  for (var d = i32(p.nd) - 1; d >= 0; d--) {
    let c = r % p.shape[d];
    r = r / p.shape[d];
    ic += c * p.sc[d];
    ia += c * p.sa[d];
    ib += c * p.sb[d];
  }
  O[i] = select(B[ib], A[ia], C[ic] != 0.0);
}
