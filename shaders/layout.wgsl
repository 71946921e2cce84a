// Strided window copy, the one kernel behind permute, slice, pad2d and concat (and their
// gradients). The thread for index coordinate c (over the index shape I) reads the source at
// s = c - lo when 0 <= s < S on every axis, else writes the fill value; reads go through the
// source strides XS from XB, writes through the destination strides YS from YB. Every
// destination element is written by exactly one thread, so no ordering questions arise.
override WG: u32 = 256u;

struct Params {
  n: u32, nd: u32, xb: u32, yb: u32, value: f32,
  I: array<u32, 6>, lo: array<i32, 6>, S: array<u32, 6>,
  XS: array<u32, 6>, YS: array<u32, 6>,
}
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
@group(0) @binding(2) var<storage, read> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  var r = i;
  var xi = p.xb;
  var yi = p.yb;
  var inside = true;
  for (var d = i32(p.nd) - 1; d >= 0; d--) {
    let c = r % p.I[d];
    r = r / p.I[d];
    yi += c * p.YS[d];
    let s = i32(c) - p.lo[d];
    if (s < 0 || s >= i32(p.S[d])) { inside = false; } else { xi += u32(s) * p.XS[d]; }
  }
  if (inside) { Y[yi] = X[xi]; } else { Y[yi] = p.value; }
}
