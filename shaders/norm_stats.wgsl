// Per-group mean and biased variance for batch/instance norm, into Mean[C] and Var[C]. Data
// is viewed as [N, C, S]; group c reduces over (n, s). One workgroup per group. The sums are
// those of a 256-lane reduction: lane l adds elements l, l + 256, ... in order, then a binary
// tree adds lane l + s into lane l for s = 128, 64, ..., 1. Same order every run, no atomics.
// Thread t of 32 plays lanes t + 32 r (r < 8), so the tree's first three levels are its own
// additions and only the last five cross threads: llvmpipe runs a workgroup barrier as a switch
// between every 8-lane group of the workgroup, and 256 threads made the barriers the kernel's
// main cost. Two passes (mean, then squared deviations) avoid the cancellation of
// E[x^2] - E[x]^2. Entry `running` also updates the running statistics in place (PyTorch):
// r = (1 - momentum) r + momentum batch, with the unbiased variance var m / (m - 1).
//! include lanes256
struct Params { N: u32, C: u32, S: u32, momentum: f32 }
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Mean: array<f32>;
@group(0) @binding(2) var<storage, read_write> Var: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<storage, read_write> RM: array<f32>;
@group(0) @binding(5) var<storage, read_write> RV: array<f32>;

var<workgroup> part: array<f32, WG>;

/** Element k of group c in the (n, s) order, as its deviation from `mean`, squared if `sq`. */
fn term(c: u32, k: u32, mean: f32, sq: bool) -> f32 {
  let n = k / p.S;
  let d = X[(n * p.C + c) * p.S + (k - n * p.S)] - mean;
  return select(d, d * d, sq);
}

/** The 256-lane sum over group c of term(k): lane partials as laid out in lanes256. */
fn total(c: u32, t: u32, mean: f32, sq: bool) -> f32 {
  let m = p.N * p.S;
  var a: Lanes;
  for (var base = t; base < m; base += 256u) {
    // Lane t + 32 r adds element base + 32 r; past the end it adds +0.0, which leaves a sum
    // that started at +0.0 bit for bit unchanged.
    for (var r = 0u; r < R; r++) {
      let k = base + 32u * r;
      if (k < m) { a.v[r] += term(c, k, mean, sq); }
    }
  }
  part[t] = fold(a);
  return crossTree(t);
}

fn crossTree(t: u32) -> f32 {
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (t < s) { part[t] += part[t + s]; }
  }
  workgroupBarrier();
  return part[0];
}

/** (mean, biased variance) of group c; every thread gets them. */
fn stats(c: u32, t: u32) -> vec2f {
  let m = f32(p.N * p.S);
  let mean = total(c, t, 0.0, false) / m;
  workgroupBarrier();
  return vec2f(mean, total(c, t, mean, true) / m);
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
