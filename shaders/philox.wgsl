// Counter-based random numbers: Philox4x32-10 (Salmon et al., "Parallel random numbers: as
// easy as 1, 2, 3"). Thread i encrypts counter [base + i (64-bit), 0, 0] under the 64-bit key
// and turns the 4 output words into elements 4i..4i+3. Only integer arithmetic and exactly
// rounded float ops decide uniform/bernoulli values, so they are identical on every adapter.
// OP: 0 uniform in [a, a + b), 1 normal (mean a, std b), 2 bernoulli (1 where u < a).
override OP: u32 = 0u;
override WG: u32 = 256u;

struct Params { n: u32, k0: u32, k1: u32, base_lo: u32, base_hi: u32, a: f32, b: f32 }
@group(0) @binding(0) var<storage, read_write> Y: array<f32>;
@group(0) @binding(1) var<uniform> p: Params;

//! include philox_core

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  let first = i * 4u;
  if (first >= p.n) { return; }
  let lo = p.base_lo + i;
  let hi = p.base_hi + select(0u, 1u, lo < i); // carry into the high word
  let v = transform_words(OP, philox(vec4u(lo, hi, 0u, 0u), vec2u(p.k0, p.k1)), p.a, p.b);
  Y[first] = v.x;
  if (first + 1u < p.n) { Y[first + 1u] = v.y; }
  if (first + 2u < p.n) { Y[first + 2u] = v.z; }
  if (first + 3u < p.n) { Y[first + 3u] = v.w; }
}
