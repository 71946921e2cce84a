// One phase of harmonic_fill's red-black SOR, in place on Y [planes, H, W] in global memory:
// for planes too large for workgroup memory. A thread per pixel; only the phase's colour is
// written, and it reads only the other colour, so the update is race-free. Entry `main` is
// forward half-sweep `phase`; entry `grad` is phase `phase` of the adjoint (as in
// harmonic_fill's `grad`, with p.iters iterations in all).
override WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> M: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

//! include harmonic_common

fn value(base: u32, i: u32) -> f32 { return Y[base + i]; }

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = gid.x + gid.y * nwg.x * WG;
  let hw = p.H * p.W;
  if (j >= p.planes * hw) { return; }
  let i = j % hw;
  let q = pixelOf(j / hw, i);
  if (colourOf(q) != (p.phase & 1u) || !isHole(q.mb, i)) { return; }
  let c = inside(q.h, q.w);
  if (c > 0.0) { Y[j] = sorUpdate(q, i, c); }
}

@compute @workgroup_size(WG)
fn grad(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = gid.x + gid.y * nwg.x * WG;
  let hw = p.H * p.W;
  if (j >= p.planes * hw) { return; }
  let i = j % hw;
  let q = pixelOf(j / hw, i);
  // The pixels harmonic_fill's adjoint skips are skipped here too (the same bits, -0 included).
  if (colourOf(q) == (p.phase & 1u) && adjointTouches(q, i)) {
    Y[j] = adjointUpdate(q, i, p.phase);
  }
}
