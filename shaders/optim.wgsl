// Fused optimizer updates, one thread per parameter element, written in place into the
// parameter and its state (PyTorch semantics). OP: 0 SGD, 1 Adam (L2 added to the gradient),
// 2 AdamW (decoupled decay). Every OP binds four buffers so one bind-group layout serves all;
// unused state slots get a small dummy buffer that is never touched.
override OP: u32 = 0u;
override WG: u32 = 256u;

struct Params {
  n: u32,
  lr: f32,
  weight_decay: f32,
  first: u32,        // 1 on a parameter's first update: state starts from scratch
  // SGD
  momentum: f32,     // 0 disables the momentum buffer
  keep_grad: f32,    // 1 - dampening
  nesterov: u32,
  // Adam / AdamW. Differences like 1 - beta2 come from the CPU in float64: rounding beta2
  // to f32 first would cost 1e-5 relative in 1 - 0.999.
  decay: f32,        // AdamW: 1 - lr * weight_decay
  beta1_c: f32,      // 1 - beta1
  beta2: f32,
  beta2_c: f32,      // 1 - beta2
  eps: f32,
  step_size: f32,    // lr / (1 - beta1^t), computed in float64 on the CPU
  bc2_sqrt: f32,     // sqrt(1 - beta2^t)
}
@group(0) @binding(0) var<storage, read_write> P: array<f32>;
@group(0) @binding(1) var<storage, read> G: array<f32>;
@group(0) @binding(2) var<storage, read_write> S1: array<f32>; // momentum buffer / exp_avg
@group(0) @binding(3) var<storage, read_write> S2: array<f32>; // exp_avg_sq
@group(0) @binding(4) var<storage, read> p: Params;

fn sgd(i: u32) {
  var g = G[i];
  if (p.weight_decay != 0.0) { g = g + p.weight_decay * P[i]; }
  if (p.momentum != 0.0) {
    var buf = g;
    if (p.first == 0u) { buf = p.momentum * S1[i] + p.keep_grad * g; }
    S1[i] = buf;
    g = select(buf, g + p.momentum * buf, p.nesterov != 0u);
  }
  P[i] = P[i] - p.lr * g;
}

fn adam(i: u32, decoupled: bool) {
  var w = P[i];
  var g = G[i];
  if (p.weight_decay != 0.0) {
    if (decoupled) { w = w * p.decay; }
    else { g = g + p.weight_decay * w; }
  }
  var m = 0.0;
  var v = 0.0;
  if (p.first == 0u) {
    m = S1[i];
    v = S2[i];
  }
  m = m + p.beta1_c * (g - m); // lerp, as torch's exp_avg.lerp_
  v = p.beta2 * v + p.beta2_c * g * g;
  S1[i] = m;
  S2[i] = v;
  let denom = sqrt(v) / p.bc2_sqrt + p.eps;
  P[i] = w - p.step_size * (m / denom);
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  switch OP {
    case 0u: { sgd(i); }
    case 1u: { adam(i, false); }
    default: { adam(i, true); }
  }
}
