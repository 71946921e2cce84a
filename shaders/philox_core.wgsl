// Philox4x32-10 and the word-to-float transforms shared by philox.wgsl (one counter stream)
// and philox_rows.wgsl (one key per example row). Not a kernel: included with
// `//! include philox_core` (runtime/engine.ts shaderSource).

const M0: u32 = 0xD2511F53u;
const M1: u32 = 0xCD9E8D57u;
const W0: u32 = 0x9E3779B9u;
const W1: u32 = 0xBB67AE85u;

// High 32 bits of the 64-bit product a * b, from 16-bit halves (WGSL has no 64-bit ints).
fn mulhi(a: u32, b: u32) -> u32 {
  let al = a & 0xffffu;
  let ah = a >> 16u;
  let bl = b & 0xffffu;
  let bh = b >> 16u;
  let ll = al * bl;
  let lh = al * bh;
  let hl = ah * bl;
  let hh = ah * bh;
  let mid = (ll >> 16u) + (lh & 0xffffu) + (hl & 0xffffu);
  return hh + (lh >> 16u) + (hl >> 16u) + (mid >> 16u);
}

fn philox(c_in: vec4u, k_in: vec2u) -> vec4u {
  var c = c_in;
  var k = k_in;
  for (var r = 0u; r < 10u; r++) {
    if (r > 0u) { k = k + vec2u(W0, W1); }
    let hi0 = mulhi(M0, c.x);
    let lo0 = M0 * c.x;
    let hi1 = mulhi(M1, c.z);
    let lo1 = M1 * c.z;
    c = vec4u(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
  }
  return c;
}

// Top 24 bits scaled by 2^-24: exact in f32, in [0, 1).
fn unit(x: u32) -> f32 {
  return f32(x >> 8u) * 5.9604644775390625e-8;
}

// ln(x) for normal positive x with small relative error everywhere (also near 1, where the
// built-in log may only be accurate in absolute terms): x = m 2^e, m in [1/sqrt2, sqrt2),
// ln m = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.172.
fn ln_precise(x: f32) -> f32 {
  let bits = bitcast<u32>(x);
  var e = i32((bits >> 23u) & 0xffu) - 127;
  var m = bitcast<f32>((bits & 0x7fffffu) | 0x3f800000u);
  if (m > 1.41421356) {
    m = m * 0.5;
    e = e + 1;
  }
  let s = (m - 1.0) / (m + 1.0);
  let s2 = s * s;
  let poly = 1.0 + s2 * (1.0 / 3.0 + s2 * (0.2 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0 + s2 / 11.0))));
  let fe = f32(e);
  return fe * 0.693145751953125 + (fe * 1.4286068203094172e-6 + 2.0 * s * poly);
}

// (cos, sin) of 2 pi t for t = k 2^-24 in [0, 1): the quadrant split is exact, the remaining
// angle is within [-pi/4, pi/4] where short Taylor polynomials are accurate to f32.
fn cos_sin_turn(t: f32) -> vec2f {
  let t4 = t * 4.0;
  let q = round(t4);
  let a = (t4 - q) * 1.5707963267948966;
  let a2 = a * a;
  let s = a * (1.0 - a2 / 6.0 * (1.0 - a2 / 20.0 * (1.0 - a2 / 42.0 * (1.0 - a2 / 72.0))));
  let c = 1.0 - a2 / 2.0 * (1.0 - a2 / 12.0 * (1.0 - a2 / 30.0 * (1.0 - a2 / 56.0 * (1.0 - a2 / 90.0))));
  switch (u32(q) & 3u) {
    case 0u: { return vec2f(c, s); }
    case 1u: { return vec2f(-s, c); }
    case 2u: { return vec2f(-c, -s); }
    default: { return vec2f(s, -c); }
  }
}

// Box-Muller: two standard normals from two words.
fn box_muller(x: u32, y: u32) -> vec2f {
  let u1 = f32((x >> 8u) + 1u) * 5.9604644775390625e-8; // (0, 1]: log stays finite
  let r = sqrt(-2.0 * ln_precise(u1));
  return r * cos_sin_turn(unit(y));
}

// OP 0: uniform in [a, a + b); 1: normal (mean a, std b); 2: bernoulli (1 where u < a).
fn transform_words(op: u32, w: vec4u, a: f32, b: f32) -> vec4f {
  switch op {
    case 0u: {
      return vec4f(a) + vec4f(b) * vec4f(unit(w.x), unit(w.y), unit(w.z), unit(w.w));
    }
    case 1u: {
      let z = vec4f(box_muller(w.x, w.y), box_muller(w.z, w.w));
      return vec4f(a) + vec4f(b) * z;
    }
    default: {
      let u = vec4f(unit(w.x), unit(w.y), unit(w.z), unit(w.w));
      return select(vec4f(0.0), vec4f(1.0), u < vec4f(a));
    }
  }
}
