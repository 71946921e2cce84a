// Backward of the unary ops in unary.wgsl: GX = GY * f'(X). Op codes match unary.wgsl.
override OP: u32 = 0u;
override WG: u32 = 256u;

struct Params { n: u32, a: f32, b: f32 }
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> GY: array<f32>;
@group(0) @binding(2) var<storage, read_write> GX: array<f32>;
@group(0) @binding(3) var<storage, read> p: Params;

fn sigm(x: f32) -> f32 {
  if (x >= 0.0) { return 1.0 / (1.0 + exp(-x)); }
  let e = exp(x);
  return e / (1.0 + e);
}

fn deriv(x: f32, a: f32, b: f32) -> f32 {
  switch OP {
    case 0u: { return -1.0; }
    case 1u: { return exp(x); }
    case 2u: { return 1.0 / x; }
    case 3u: { return 0.5 / sqrt(x); }
    case 4u: { return sign(x); }
    case 5u: { return select(0.0, 1.0, x > 0.0); }
    case 6u: { return select(a, 1.0, x > 0.0); }
    case 7u: { return select(a * exp(x), 1.0, x > 0.0); }
    case 8u: { let s = sigm(x); return s * (1.0 - s); }
    case 9u: { let t = tanh(x); return 1.0 - t * t; }
    case 10u: { return 0.0; }
    case 11u: { return select(0.0, 1.0, x >= a && x <= b); }
    case 12u: { return a; }
    case 13u: { return 2.0 * x; }
    case 14u: { return -1.0 / (x * x); }
    case 15u: { return a * pow(x, a - 1.0); }
    default: { return 0.0; }
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  GX[i] = GY[i] * deriv(X[i], p.a, p.b);
}
