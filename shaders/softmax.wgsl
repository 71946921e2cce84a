// Row-wise softmax / log-softmax over contiguous rows of length K, one thread per row
// (serial loops: a fixed summation order, so results are bit-identical run to run).
// Stable form: log_softmax(z) = z - m - log(sum exp(z - m)), m the row maximum.
// MODE 0: Y = log_softmax(X). MODE 1: Y = softmax(X).
override WG: u32 = 256u;
override MODE: u32 = 0u;

struct Params { rows: u32, K: u32 }
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let row = gid.x + gid.y * nwg.x * WG;
  if (row >= p.rows) { return; }
  let base = row * p.K;
  var m = X[base];
  for (var k = 1u; k < p.K; k++) { m = max(m, X[base + k]); }
  var s = 0.0;
  for (var k = 0u; k < p.K; k++) { s += exp(X[base + k] - m); }
  if (MODE == 0u) {
    let c = m + log(s);
    for (var k = 0u; k < p.K; k++) { Y[base + k] = X[base + k] - c; }
  } else {
    let inv = 1.0 / s;
    for (var k = 0u; k < p.K; k++) { Y[base + k] = exp(X[base + k] - m) * inv; }
  }
}
