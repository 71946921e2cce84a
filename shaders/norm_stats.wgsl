// Per-group mean and biased variance for batch/instance norm, into Mean[C] and Var[C]. Data
// is viewed as [N, C, S]; group c reduces over (n, s). One workgroup per group; each thread
// sums a fixed strided subset, then a tree reduction in workgroup memory: same order every
// run, no atomics. Two passes (mean, then squared deviations) avoid the cancellation of
// E[x^2] - E[x]^2. Entry `running` also updates the running statistics in place (PyTorch):
// r = (1 - momentum) r + momentum batch, with the unbiased variance var m / (m - 1).
const WG: u32 = 256u;
struct Params { N: u32, C: u32, S: u32, momentum: f32 }
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Mean: array<f32>;
@group(0) @binding(2) var<storage, read_write> Var: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<storage, read_write> RM: array<f32>;
@group(0) @binding(5) var<storage, read_write> RV: array<f32>;

var<workgroup> part: array<f32, WG>;

fn tree(t: u32) -> f32 {
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (t < s) { part[t] += part[t + s]; }
  }
  workgroupBarrier();
  return part[0];
}

/** (mean, biased variance) of group c; every thread gets them. */
fn stats(c: u32, t: u32) -> vec2f {
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
  return vec2f(mean, tree(t) / f32(m));
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  let r = stats(wid.x, t);
  if (t == 0u) {
    Mean[wid.x] = r.x;
    Var[wid.x] = r.y;
  }
}

@compute @workgroup_size(WG)
fn running(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  let c = wid.x;
  let r = stats(c, t);
  if (t == 0u) {
    Mean[c] = r.x;
    Var[c] = r.y;
    let mf = f32(p.N * p.S);
    let unbiased = r.y * mf / max(mf - 1.0, 1.0);
    RM[c] = (1.0 - p.momentum) * RM[c] + p.momentum * r.x;
    RV[c] = (1.0 - p.momentum) * RV[c] + p.momentum * unbiased;
  }
}
