// Running statistics update (PyTorch): r = (1 - momentum) * r + momentum * batch, with the
// unbiased variance var * m / (m - 1) for the running estimate.
override WG: u32 = 64u;
struct Params { C: u32, m: u32, momentum: f32 }
@group(0) @binding(0) var<storage, read> Stats: array<f32>;
@group(0) @binding(1) var<storage, read_write> RM: array<f32>;
@group(0) @binding(2) var<storage, read_write> RV: array<f32>;
@group(0) @binding(3) var<storage, read> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  if (c >= p.C) { return; }
  let mf = f32(p.m);
  let unbiased = Stats[p.C + c] * mf / max(mf - 1.0, 1.0);
  RM[c] = (1.0 - p.momentum) * RM[c] + p.momentum * Stats[c];
  RV[c] = (1.0 - p.momentum) * RV[c] + p.momentum * unbiased;
}
