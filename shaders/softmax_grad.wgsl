// Backward of softmax.wgsl, one thread per row, from the forward output Y:
// MODE 0 (log-softmax): GX = GY - exp(Y) * sum(GY).
// MODE 1 (softmax):     GX = Y * (GY - sum(GY * Y)).
override WG: u32 = 256u;
override MODE: u32 = 0u;

struct Params { rows: u32, K: u32 }
@group(0) @binding(0) var<storage, read> Y: array<f32>;
@group(0) @binding(1) var<storage, read> GY: array<f32>;
@group(0) @binding(2) var<storage, read_write> GX: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let row = gid.x + gid.y * nwg.x * WG;
  if (row >= p.rows) { return; }
  let base = row * p.K;
  var s = 0.0;
  if (MODE == 0u) {
    for (var k = 0u; k < p.K; k++) { s += GY[base + k]; }
    for (var k = 0u; k < p.K; k++) { GX[base + k] = GY[base + k] - exp(Y[base + k]) * s; }
  } else {
    for (var k = 0u; k < p.K; k++) { s += GY[base + k] * Y[base + k]; }
    for (var k = 0u; k < p.K; k++) { GX[base + k] = Y[base + k] * (GY[base + k] - s); }
  }
}
