// Elementwise unary ops (forward), with up to two scalar parameters a and b.
override OP: u32 = 0u;
override WG: u32 = 256u;

struct Params { n: u32, a: f32, b: f32 }
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
@group(0) @binding(2) var<storage, read> p: Params;

fn apply(x: f32, a: f32, b: f32) -> f32 {
  switch OP {
    case 0u: { return -x; }
    case 1u: { return exp(x); }
    case 2u: { return log(x); }
    case 3u: { return sqrt(x); }
    case 4u: { return abs(x); }
    case 5u: { return max(x, 0.0); }
    case 6u: { return select(a * x, x, x > 0.0); }             // leaky relu, slope a
    case 7u: { return select(a * (exp(x) - 1.0), x, x > 0.0); } // elu, alpha a
    case 8u: {                                                  // sigmoid, stable both sides
      if (x >= 0.0) { return 1.0 / (1.0 + exp(-x)); }
      let e = exp(x);
      return e / (1.0 + e);
    }
    case 9u: { return tanh(x); }
    case 10u: { return sign(x); }
    case 11u: { return clamp(x, a, b); }
    case 12u: { return a * x + b; }
    case 13u: { return x * x; }
    case 14u: { return 1.0 / x; }
    case 15u: { return pow(x, a); }
    case 16u: { return select(0.0, 1.0, x > a); }
    case 17u: { return floor(x); }
    default: { return 0.0; }
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  Y[i] = apply(X[i], p.a, p.b);
}
