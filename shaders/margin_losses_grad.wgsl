// Backward of margin_losses.wgsl, one thread per logit: the loss of row n depends on at most
// five logits (y, o or t, pi1, pi3, pi4, from Side); GZ[n,k] sums the partial derivatives of
// those that are k (indices may coincide, e.g. y == pi1), times GY[n].
override WG: u32 = 256u;
override MODE: u32 = 0u;

struct Params { n: u32, K: u32 }
@group(0) @binding(0) var<storage, read> Z: array<f32>;
@group(0) @binding(1) var<storage, read> L: array<f32>;
@group(0) @binding(2) var<storage, read> T: array<f32>;
@group(0) @binding(3) var<storage, read> Side: array<f32>;
@group(0) @binding(4) var<storage, read> GY: array<f32>;
@group(0) @binding(5) var<storage, read_write> GZ: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

fn validClass(v: f32) -> bool {
  return v >= 0.0 && v < f32(p.K) && floor(v) == v;
}

fn hit(k: f32, idx: f32) -> f32 {
  return select(0.0, 1.0, k == idx);
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  let row = i / p.K;
  let base = row * p.K;
  let k = f32(i - base);
  let y = L[row];
  if (!validClass(y) || (MODE == 1u && !validClass(T[row]))) {
    GZ[i] = bitcast<f32>(0x7fc00000u);
    return;
  }
  let o = Side[4u * row];
  let pi1 = Side[4u * row + 1u];
  let pi3 = Side[4u * row + 2u];
  let pi4 = Side[4u * row + 3u];
  var d = 0.0;
  if (MODE == 2u) {
    d = hit(k, y) - hit(k, o);
  } else {
    // L = -num / den: dL/dnum = -1/den, dL/dden = num/den^2.
    let other = select(o, T[row], MODE == 1u);
    let num = Z[base + u32(y)] - Z[base + u32(other)];
    let z1 = Z[base + u32(pi1)];
    let z3 = Z[base + u32(pi3)];
    var den = z1 - z3 + 1e-12;
    var d3 = -hit(k, pi3);
    if (MODE == 1u) {
      den = z1 - 0.5 * (z3 + Z[base + u32(pi4)]) + 1e-12;
      d3 = -0.5 * (hit(k, pi3) + hit(k, pi4));
    }
    let dnum = hit(k, y) - hit(k, other);
    let dden = hit(k, pi1) + d3;
    d = -dnum / den + num / (den * den) * dden;
  }
  GZ[i] = GY[row] * d;
}
