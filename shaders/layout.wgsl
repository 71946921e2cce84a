// Strided window copy, the one kernel behind permute, slice, pad2d and concat (and their
// gradients). The thread for index coordinate c (over the index shape I) reads the source at
// s = c - lo when 0 <= s < S on every axis, else writes the fill value; reads go through the
// source strides XS from XB, writes through the destination strides YS from YB. Every
// destination element is written by exactly one thread, so no ordering questions arise.
override WG: u32 = 256u;

// Parameter words (a uniform buffer read as vec4u, so that llvmpipe loads a word once for all
// lanes instead of in a loop over them): n 0, nd 1, xb 2, yb 3, value 4, then per axis d < 6:
// I 5 + d, lo 11 + d (i32), S 17 + d, XS 23 + d, YS 29 + d.
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
@group(0) @binding(2) var<uniform> P: array<vec4u, 9>;

fn word(w: u32) -> u32 { return P[w >> 2u][w & 3u]; }

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= P[0].x) { return; }
  var r = i;
  var xi = P[0].z;
  var yi = P[0].w;
  var inside = true;
  for (var d = i32(P[0].y) - 1; d >= 0; d--) {
    let u = u32(d);
    let size = word(5u + u);
    let c = r % size;
    r = r / size;
    yi += c * word(29u + u);
    let s = i32(c) - bitcast<i32>(word(11u + u));
    if (s < 0 || s >= i32(word(17u + u))) { inside = false; } else { xi += u32(s) * word(23u + u); }
  }
  if (inside) { Y[yi] = X[xi]; } else { Y[yi] = bitcast<f32>(P[1].x); }
}
