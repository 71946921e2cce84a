// Counter-based random numbers keyed per example row: row r of the output (row_len elements)
// uses the Philox counter [block, R[2r], R[2r+1], tag] under the key of (seed, stream), where
// R holds each row's (example index, call number) and `tag` numbers the draws of one call. A
// row's numbers therefore depend only on its example and call, never on the batch around it.
// OP as in philox_core: 0 uniform, 1 normal, 2 bernoulli.
override OP: u32 = 0u;
override WG: u32 = 256u;

struct Params { rows: u32, k0: u32, k1: u32, row_len: u32, tag: u32, a: f32, b: f32 }
@group(0) @binding(0) var<storage, read_write> Y: array<f32>;
@group(0) @binding(1) var<storage, read> R: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

//! include philox_core

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * WG;
  let per_row = (p.row_len + 3u) / 4u;
  let row = t / per_row;
  if (row >= p.rows) { return; }
  let blk = t % per_row;
  let ctr = vec4u(blk, u32(R[2u * row]), u32(R[2u * row + 1u]), p.tag);
  let v = transform_words(OP, philox(ctr, vec2u(p.k0, p.k1)), p.a, p.b);
  let first = row * p.row_len + blk * 4u;
  let end = (row + 1u) * p.row_len;
  Y[first] = v.x;
  if (first + 1u < end) { Y[first + 1u] = v.y; }
  if (first + 2u < end) { Y[first + 2u] = v.z; }
  if (first + 3u < end) { Y[first + 3u] = v.w; }
}
