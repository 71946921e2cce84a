// Per-example margin losses on logits Z [N,K], labels L [N], targets T [N] (float class
// indices), one thread per row. A single pass keeps the indices of the four largest logits
// (ties: the smaller index ranks first, like a stable descending sort) and writes them with
// o = argmax_{i != y} to Side[n] = (o, pi1, pi3, pi4) for the backward pass.
//   MODE 0 dlr:          -(z_y - z_o) / (z_pi1 - z_pi3 + 1e-12)
//   MODE 1 dlr targeted: -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12)
//   MODE 2 margin:        z_y - z_o
// A label or target that is not an integer in [0, K) gives NaN.
override WG: u32 = 256u;
override MODE: u32 = 0u;

struct Params { N: u32, K: u32 }
@group(0) @binding(0) var<storage, read> Z: array<f32>;
@group(0) @binding(1) var<storage, read> L: array<f32>;
@group(0) @binding(2) var<storage, read> T: array<f32>;
@group(0) @binding(3) var<storage, read_write> Out: array<f32>;
@group(0) @binding(4) var<storage, read_write> Side: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

fn validClass(v: f32) -> bool {
  return v >= 0.0 && v < f32(p.K) && floor(v) == v;
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let n = gid.x + gid.y * nwg.x * WG;
  if (n >= p.N) { return; }
  let base = n * p.K;
  var top = array<u32, 4>(p.K, p.K, p.K, p.K);
  for (var k = 0u; k < p.K; k++) {
    let v = Z[base + k];
    // Insert k after every kept entry that is >= v (strict > to move up keeps index order).
    var j = 4u;
    while (j > 0u && (top[j - 1u] == p.K || v > Z[base + top[j - 1u]])) { j--; }
    if (j < 4u) {
      for (var q = 3u; q > j; q--) { top[q] = top[q - 1u]; }
      top[j] = k;
    }
  }
  let yf = L[n];
  let tf = T[n];
  let nan = bitcast<f32>(0x7fc00000u);
  if (!validClass(yf) || (MODE == 1u && !validClass(tf))) {
    Out[n] = nan;
    Side[4u * n] = 0.0;
    Side[4u * n + 1u] = 0.0;
    Side[4u * n + 2u] = 0.0;
    Side[4u * n + 3u] = 0.0;
    return;
  }
  let y = u32(yf);
  let o = select(top[0], top[1], top[0] == y);
  let zy = Z[base + y];
  let z1 = Z[base + top[0]];
  if (MODE == 0u) {
    Out[n] = -(zy - Z[base + o]) / (z1 - Z[base + top[2]] + 1e-12);
  } else if (MODE == 1u) {
    let den = z1 - 0.5 * (Z[base + top[2]] + Z[base + top[3]]) + 1e-12;
    Out[n] = -(zy - Z[base + u32(tf)]) / den;
  } else {
    Out[n] = zy - Z[base + o];
  }
  Side[4u * n] = f32(o);
  Side[4u * n + 1u] = f32(top[0]);
  Side[4u * n + 2u] = f32(top[2]);
  Side[4u * n + 3u] = f32(top[3]);
}
