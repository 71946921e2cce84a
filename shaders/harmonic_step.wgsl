// One phase of harmonic_fill's red-black SOR, in place on Y [planes, H, W] in global memory:
// for planes too large for workgroup memory. A thread per pixel; only the phase's colour is
// written, and it reads only the other colour, so the update is race-free. Entry `main` is
// forward half-sweep `phase`; entry `grad` is phase `phase` of the adjoint (as in
// harmonic_fill's `grad`, with p.iters iterations in all).
override WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> M: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
@group(0) @binding(2) var<storage, read> p: Params;

//! include harmonic_common

fn share(mb: u32, base: u32, k: u32, h: u32, w: u32) -> f32 {
  if (!isHole(mb, k)) { return 0.0; }
  let c = inside(h, w);
  if (c == 0.0) { return 0.0; }
  return p.omega * (Y[base + k] / c);
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = gid.x + gid.y * nwg.x * WG;
  let hw = p.H * p.W;
  if (j >= p.planes * hw) { return; }
  let plane = j / hw;
  let i = j - plane * hw;
  let base = plane * hw;
  let mb = (plane / p.C) * hw;
  let h = i / p.W;
  let w = i - h * p.W;
  if (((h + w) & 1u) != (p.phase & 1u) || !isHole(mb, i)) { return; }
  let c = inside(h, w);
  if (c == 0.0) { return; }
  var up = 0.0; var down = 0.0; var left = 0.0; var right = 0.0;
  if (h > 0u) { up = Y[j - p.W]; }
  if (h + 1u < p.H) { down = Y[j + p.W]; }
  if (w > 0u) { left = Y[j - 1u]; }
  if (w + 1u < p.W) { right = Y[j + 1u]; }
  Y[j] = (1.0 - p.omega) * Y[j] + p.omega * (((up + down) + (left + right)) / c);
}

@compute @workgroup_size(WG)
fn grad(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = gid.x + gid.y * nwg.x * WG;
  let hw = p.H * p.W;
  if (j >= p.planes * hw) { return; }
  let plane = j / hw;
  let i = j - plane * hw;
  let base = plane * hw;
  let mb = (plane / p.C) * hw;
  let h = i / p.W;
  let w = i - h * p.W;
  let s = p.phase;
  let last = 2u * p.iters;
  if (((h + w) & 1u) != (s & 1u)) { return; }
  var g = Y[j];
  if (s > 0u && isHole(mb, i) && inside(h, w) > 0.0) { g = (1.0 - p.omega) * g; }
  if (s < last) {
    var up = 0.0; var down = 0.0; var left = 0.0; var right = 0.0;
    if (h > 0u) { up = share(mb, base, i - p.W, h - 1u, w); }
    if (h + 1u < p.H) { down = share(mb, base, i + p.W, h + 1u, w); }
    if (w > 0u) { left = share(mb, base, i - 1u, h, w - 1u); }
    if (w + 1u < p.W) { right = share(mb, base, i + 1u, h, w + 1u); }
    g = g + ((up + down) + (left + right));
  }
  Y[j] = g;
}
