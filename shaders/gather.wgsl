// Row-wise pick by class index and its scatter-shaped inverse, for x [N,K] and float indices
// idx [N]. MODE 0 (gather): Y[n] = X[n, idx[n]], NaN when idx[n] is not a class index in
// [0, K) (so bad labels show up instead of reading another row). MODE 1 (scatter, the
// gradient): one thread per [n,k] writes Y[n,k] = X[n] if k == idx[n] else 0. MODE 2
// (one-hot): like MODE 1 with the value 1. No thread writes another's element: no atomics.
override WG: u32 = 256u;
override MODE: u32 = 0u;

struct Params { n: u32, K: u32 }
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> Idx: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  if (MODE == 0u) {
    let t = Idx[i];
    if (t >= 0.0 && t < f32(p.K) && floor(t) == t) {
      Y[i] = X[i * p.K + u32(t)];
    } else {
      Y[i] = bitcast<f32>(0x7fc00000u);
    }
    return;
  }
  let row = i / p.K;
  let k = f32(i - row * p.K);
  var v = 1.0;
  if (MODE == 1u) { v = X[row]; }
  Y[i] = select(0.0, v, k == Idx[row]);
}
