// Descending sort of each contiguous row of length K by ranking: the thread of element j
// counts the row entries that come before it (larger, or equal with a smaller index; NaN
// counts as largest, like torch.sort(descending=True)). Ranks form a permutation, so each
// output slot has exactly one writer and ties resolve by index: deterministic, no atomics.
// MODE 0 (forward): Y[rank] = X[j] and Rank[j] = rank. MODE 1 (gradient): GX[j] = GY[Rank[j]]
// (X is the output gradient, Y the input gradient; the Rank buffer is the forward's).
override WG: u32 = 256u;
override MODE: u32 = 0u;

struct Params { n: u32, K: u32 }
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Rank: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

fn before(a: f32, ia: u32, b: f32, ib: u32) -> bool {
  let na = a != a;
  let nb = b != b;
  if (na != nb) { return na; }
  if (na || a == b) { return ia < ib; }
  return a > b;
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  let row = i / p.K;
  let base = row * p.K;
  if (MODE == 1u) {
    Y[i] = X[base + u32(Rank[i])];
    return;
  }
  let v = X[i];
  let j = i - base;
  var rank = 0u;
  for (var k = 0u; k < p.K; k++) {
    if (before(X[base + k], k, v, j)) { rank++; }
  }
  Y[base + rank] = v;
  Rank[i] = f32(rank);
}
