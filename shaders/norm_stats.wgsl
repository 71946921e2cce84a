// Per-group mean and biased variance for batch/instance norm, stored as [mean[C], var[C]]. Data is viewed as [N, C, S];
// group c reduces over (n, s). One workgroup per group; each thread sums a fixed strided
// subset, then a tree reduction in workgroup memory: same order every run, no atomics.
// Two passes (mean, then squared deviations) avoid the cancellation of E[x^2] - E[x]^2.
const WG: u32 = 256u;
struct Params { N: u32, C: u32, S: u32 }
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Stats: array<f32>;
@group(0) @binding(2) var<storage, read> p: Params;

var<workgroup> part: array<f32, WG>;

fn tree(t: u32) -> f32 {
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (t < s) { part[t] += part[t + s]; }
  }
  workgroupBarrier();
  return part[0];
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  let c = wid.x;
  let m = p.N * p.S;
  var s = 0.0;
  for (var k = t; k < m; k += WG) {
    let n = k / p.S;
    s += X[(n * p.C + c) * p.S + (k - n * p.S)];
  }
  part[t] = s;
  let mean = tree(t) / f32(m);
  workgroupBarrier();
  var q = 0.0;
  for (var k = t; k < m; k += WG) {
    let n = k / p.S;
    let d = X[(n * p.C + c) * p.S + (k - n * p.S)] - mean;
    q += d * d;
  }
  part[t] = q;
  let v = tree(t) / f32(m);
  if (t == 0u) {
    Stats[c] = mean;
    Stats[p.C + c] = v;
  }
}
