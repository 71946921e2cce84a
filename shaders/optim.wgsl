// Optimizer updates with PyTorch semantics, as pure functions of one element's values: SGD
// (momentum, dampening, nesterov, L2) and Adam / AdamW (L2 added to the gradient / decoupled
// decay). runtime/optim_kernel.ts generates the multi-tensor kernels that load each
// parameter's elements, call these and store the results in place.

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
  pad0: u32,
  pad1: u32,
}

/** New (parameter, momentum buffer); the buffer value is only read when not first. */
fn sgd_update(w: f32, grad: f32, s1: f32, q: Params) -> vec2f {
  var g = grad;
  if (q.weight_decay != 0.0) { g = g + q.weight_decay * w; }
  var buf = g;
  if (q.momentum != 0.0) {
    if (q.first == 0u) { buf = q.momentum * s1 + q.keep_grad * g; }
    g = select(buf, g + q.momentum * buf, q.nesterov != 0u);
  }
  return vec2f(w - q.lr * g, buf);
}

/** New (parameter, exp_avg, exp_avg_sq); the state is only read when not first. */
fn adam_update(w0: f32, grad: f32, s1: f32, s2: f32, q: Params, decoupled: bool) -> vec3f {
  var w = w0;
  var g = grad;
  if (q.weight_decay != 0.0) {
    if (decoupled) { w = w * q.decay; }
    else { g = g + q.weight_decay * w; }
  }
  var m = 0.0;
  var v = 0.0;
  if (q.first == 0u) {
    m = s1;
    v = s2;
  }
  m = m + q.beta1_c * (g - m); // lerp, as torch's exp_avg.lerp_
  v = q.beta2 * v + q.beta2_c * g * g;
  let denom = sqrt(v) / q.bc2_sqrt + q.eps;
  return vec3f(w - q.step_size * (m / denom), m, v);
}
