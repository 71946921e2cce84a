// Fused cross-entropy per example, one thread per row of logits Z [N,K] with float class
// labels L [N]: Loss[n] = logsumexp(Z[n]) - Z[n, L[n]]; the row's logsumexp goes to Lse[n]
// for the backward pass. A label that is not an integer in [0, K) gives NaN.
override WG: u32 = 256u;

struct Params { N: u32, K: u32 }
@group(0) @binding(0) var<storage, read> Z: array<f32>;
@group(0) @binding(1) var<storage, read> L: array<f32>;
@group(0) @binding(2) var<storage, read_write> Loss: array<f32>;
@group(0) @binding(3) var<storage, read_write> Lse: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let n = gid.x + gid.y * nwg.x * WG;
  if (n >= p.N) { return; }
  let base = n * p.K;
  var m = Z[base];
  for (var k = 1u; k < p.K; k++) { m = max(m, Z[base + k]); }
  var s = 0.0;
  for (var k = 0u; k < p.K; k++) { s += exp(Z[base + k] - m); }
  let lse = m + log(s);
  Lse[n] = lse;
  let y = L[n];
  if (y >= 0.0 && y < f32(p.K) && floor(y) == y) {
    Loss[n] = lse - Z[base + u32(y)];
  } else {
    Loss[n] = bitcast<f32>(0x7fc00000u);
  }
}
