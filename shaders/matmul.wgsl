// Batched matmul C[b] = op(A[b]) @ op(B[b]), op = optional transpose (TA, TB).
// Each thread keeps a 4x4 block of C in registers; loads clamp indices at the edges so the
// inner loop has no branches, and only the stores are guarded.
// A is [M,K] (or [K,M] when TA), B is [K,N] (or [N,K] when TB), C is [M,N]; batch strides
// sa/sb/sc in elements (0 broadcasts an operand over the batch).
override WX: u32 = 8u;
override WY: u32 = 8u;
override TA: bool = false;
override TB: bool = false;

struct Params { M: u32, N: u32, K: u32, sa: u32, sb: u32, sc: u32 }
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@group(0) @binding(3) var<storage, read> p: Params;

@compute @workgroup_size(WX, WY)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let m0 = gid.y * 4u;
  let n0 = gid.x * 4u;
  if (m0 >= p.M || n0 >= p.N) { return; }
  let ba = gid.z * p.sa;
  let bb = gid.z * p.sb;
  var rows: array<u32, 4>;
  var cols: array<u32, 4>;
  for (var i = 0u; i < 4u; i++) {
    rows[i] = min(m0 + i, p.M - 1u);
    cols[i] = min(n0 + i, p.N - 1u);
  }
  var acc: array<vec4f, 4>;
  for (var k = 0u; k < p.K; k++) {
    var b: vec4f;
    var a: vec4f;
    if (TB) {
      b = vec4f(B[bb + cols[0] * p.K + k], B[bb + cols[1] * p.K + k],
                B[bb + cols[2] * p.K + k], B[bb + cols[3] * p.K + k]);
    } else {
      let r = bb + k * p.N;
      b = vec4f(B[r + cols[0]], B[r + cols[1]], B[r + cols[2]], B[r + cols[3]]);
    }
    if (TA) {
      let r = ba + k * p.M;
      a = vec4f(A[r + rows[0]], A[r + rows[1]], A[r + rows[2]], A[r + rows[3]]);
    } else {
      a = vec4f(A[ba + rows[0] * p.K + k], A[ba + rows[1] * p.K + k],
                A[ba + rows[2] * p.K + k], A[ba + rows[3] * p.K + k]);
    }
    acc[0] += a.x * b;
    acc[1] += a.y * b;
    acc[2] += a.z * b;
    acc[3] += a.w * b;
  }
  let bc = gid.z * p.sc;
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + i;
    if (m < p.M) {
      for (var j = 0u; j < 4u; j++) {
        if (n0 + j < p.N) { C[bc + m * p.N + n0 + j] = acc[i][j]; }
      }
    }
  }
}
