// Elementwise binary op with NumPy broadcasting. OP selects the function; BCAST=false is the
// fast path for equal shapes (no index arithmetic).
override OP: u32 = 0u;
override WG: u32 = 256u;
override BCAST: bool = false;

struct Params { n: u32, nd: u32, shape: array<u32, 6>, sa: array<u32, 6>, sb: array<u32, 6> }
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> O: array<f32>;
@group(0) @binding(3) var<storage, read> p: Params;

fn apply(a: f32, b: f32) -> f32 {
  switch OP {
    case 0u: { return a + b; }
    case 1u: { return a - b; }
    case 2u: { return a * b; }
    case 3u: { return a / b; }
    case 4u: { return max(a, b); }
    case 5u: { return min(a, b); }
    case 6u: { return pow(a, b); }
    case 7u: { return select(0.0, 1.0, a > b); }
    case 8u: { return select(0.0, 1.0, a < b); }
    case 9u: { return select(0.0, 1.0, a >= b); }
    case 10u: { return select(0.0, 1.0, a <= b); }
    case 11u: { return select(0.0, 1.0, a == b); }
    default: { return 0.0; }
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  var ia = i;
  var ib = i;
  if (BCAST) {
    ia = 0u;
    ib = 0u;
    var r = i;
    for (var d = i32(p.nd) - 1; d >= 0; d--) {
      let c = r % p.shape[d];
      r = r / p.shape[d];
      ia += c * p.sa[d];
      ib += c * p.sb[d];
    }
  }
  O[i] = apply(A[ia], B[ib]);
}
