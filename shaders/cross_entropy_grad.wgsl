// Backward of cross_entropy.wgsl, one thread per logit: GZ[n,k] = GY[n] * (softmax - onehot),
// softmax recomputed as exp(Z - Lse) from the forward's saved logsumexp.
override WG: u32 = 256u;

struct Params { n: u32, K: u32 }
@group(0) @binding(0) var<storage, read> Z: array<f32>;
@group(0) @binding(1) var<storage, read> L: array<f32>;
@group(0) @binding(2) var<storage, read> Lse: array<f32>;
@group(0) @binding(3) var<storage, read> GY: array<f32>;
@group(0) @binding(4) var<storage, read_write> GZ: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  let row = i / p.K;
  let k = f32(i - row * p.K);
  let sm = exp(Z[i] - Lse[row]);
  GZ[i] = GY[row] * (sm - select(0.0, 1.0, k == L[row]));
}
