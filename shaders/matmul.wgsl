// Batched matmul on K-contiguous operands: C[b] = A[b] @ B[b]^T with A [M,K4] and B [N,K4]
// (K padded with zeros to a multiple of 4; `pack` below makes that layout from any operand).
// Both operands are read as vec4 along K: on the CPU adapter every storage load is a loop
// over the SIMD lanes, so one vec4 load costs little more than a scalar one, and the loop
// count, not the arithmetic, sets the speed.
// A 4x4 block of C is a mat4x4f: (transpose(X) * Y)[j][i] = dot(x_i, y_j) where x_i is row
// m0+i of A and y_j row n0+j of B (4 values of K each).
// Entry points: tile16 (16x16 outputs per thread: 8 vec4 loads per 256 dot products, for the
// CPU adapter, where accumulators spill cheaply to L1), tile4 (4x4, no workgroup memory) and
// tiled (4x4 per thread over operands staged in workgroup memory, for GPUs).
// Rows clamp at the edges so loads never branch; only the stores are guarded.
// tile16 and tile4 number their blocks flat (row-major over the blocks of C) on 1-D workgroups
// of WG threads, so that a thin product (a [1,K] x [K,N] power iteration, a [32,512] x [512,10]
// head) leaves no thread of a workgroup idle: on llvmpipe an idle thread costs a large part of
// what a busy one does. (WG is declared with the pack kernels below; matmul launches set it to 64.)

// M, N: output size; k4: K4 / 4; sa, sb: batch strides of A, B in vec4s; sc: of C in floats
// (0 broadcasts an operand over the batch).
struct Params { M: u32, N: u32, k4: u32, sa: u32, sb: u32, sc: u32 }
@group(0) @binding(0) var<storage, read> A: array<vec4f>;
@group(0) @binding(1) var<storage, read> B: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

/** Start (in vec4s) of rows r0..r0+3, clamped to the last row. */
fn rows(base: u32, r0: u32, n: u32) -> vec4u {
  return base + min(vec4u(r0) + vec4u(0u, 1u, 2u, 3u), vec4u(n - 1u)) * p.k4;
}

fn loadA(r: vec4u, k: u32) -> mat4x4f {
  return mat4x4f(A[r.x + k], A[r.y + k], A[r.z + k], A[r.w + k]);
}

fn loadB(r: vec4u, k: u32) -> mat4x4f {
  return mat4x4f(B[r.x + k], B[r.y + k], B[r.z + k], B[r.w + k]);
}

/** Writes block c (column j = output column n0+j, row i = output row m0+i). */
fn store(bc: u32, m0: u32, n0: u32, c: mat4x4f) {
  for (var i = 0u; i < 4u; i++) {
    if (m0 + i < p.M) {
      for (var j = 0u; j < 4u; j++) {
        if (n0 + j < p.N) { C[bc + (m0 + i) * p.N + n0 + j] = c[j][i]; }
      }
    }
  }
}

/** Block (row, column) of flat thread x over blocks of `per` x `per` outputs; false past the
 * end. The launch is [grid1d(blocks), batch]: x = gid.x + gid.y * nwg.x * WG. */
fn block(x: u32, per: u32) -> vec3u {
  let nbx = (p.N + per - 1u) / per;
  let by = x / nbx;
  return vec3u(by * per, (x - by * nbx) * per, u32(by * per < p.M));
}

@compute @workgroup_size(WG)
fn tile16(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let bk = block(gid.x + gid.y * nwg.x * WG, 16u);
  if (bk.z == 0u) { return; }
  let m0 = bk.x;
  let n0 = bk.y;
  let ba = gid.z * p.sa;
  let bb = gid.z * p.sb;
  let a0 = rows(ba, m0, p.M);
  let a1 = rows(ba, m0 + 4u, p.M);
  let a2 = rows(ba, m0 + 8u, p.M);
  let a3 = rows(ba, m0 + 12u, p.M);
  let b0 = rows(bb, n0, p.N);
  let b1 = rows(bb, n0 + 4u, p.N);
  let b2 = rows(bb, n0 + 8u, p.N);
  let b3 = rows(bb, n0 + 12u, p.N);
  var c00: mat4x4f; var c01: mat4x4f; var c02: mat4x4f; var c03: mat4x4f;
  var c10: mat4x4f; var c11: mat4x4f; var c12: mat4x4f; var c13: mat4x4f;
  var c20: mat4x4f; var c21: mat4x4f; var c22: mat4x4f; var c23: mat4x4f;
  var c30: mat4x4f; var c31: mat4x4f; var c32: mat4x4f; var c33: mat4x4f;
  for (var k = 0u; k < p.k4; k++) {
    let y0 = loadB(b0, k);
    let y1 = loadB(b1, k);
    let y2 = loadB(b2, k);
    let y3 = loadB(b3, k);
    var x = transpose(loadA(a0, k));
    c00 += x * y0; c01 += x * y1; c02 += x * y2; c03 += x * y3;
    x = transpose(loadA(a1, k));
    c10 += x * y0; c11 += x * y1; c12 += x * y2; c13 += x * y3;
    x = transpose(loadA(a2, k));
    c20 += x * y0; c21 += x * y1; c22 += x * y2; c23 += x * y3;
    x = transpose(loadA(a3, k));
    c30 += x * y0; c31 += x * y1; c32 += x * y2; c33 += x * y3;
  }
  let bc = gid.z * p.sc;
  store(bc, m0, n0, c00); store(bc, m0, n0 + 4u, c01);
  store(bc, m0, n0 + 8u, c02); store(bc, m0, n0 + 12u, c03);
  store(bc, m0 + 4u, n0, c10); store(bc, m0 + 4u, n0 + 4u, c11);
  store(bc, m0 + 4u, n0 + 8u, c12); store(bc, m0 + 4u, n0 + 12u, c13);
  store(bc, m0 + 8u, n0, c20); store(bc, m0 + 8u, n0 + 4u, c21);
  store(bc, m0 + 8u, n0 + 8u, c22); store(bc, m0 + 8u, n0 + 12u, c23);
  store(bc, m0 + 12u, n0, c30); store(bc, m0 + 12u, n0 + 4u, c31);
  store(bc, m0 + 12u, n0 + 8u, c32); store(bc, m0 + 12u, n0 + 12u, c33);
}

@compute @workgroup_size(WG)
fn tile4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let bk = block(gid.x + gid.y * nwg.x * WG, 4u);
  if (bk.z == 0u) { return; }
  let m0 = bk.x;
  let n0 = bk.y;
  let a = rows(gid.z * p.sa, m0, p.M);
  let b = rows(gid.z * p.sb, n0, p.N);
  var c: mat4x4f;
  for (var k = 0u; k < p.k4; k++) {
    c += transpose(loadA(a, k)) * loadB(b, k);
  }
  store(gid.z * p.sc, m0, n0, c);
}

// tiled: for GPUs. A 16x16 workgroup computes a 64x64 block of C; each thread a 4x4 block whose
// rows are m = mb + ly + 16 i and columns n = nb + lx + 16 j (strided, so that neighbouring
// threads read neighbouring workgroup-memory vec4s and write neighbouring outputs). Slabs of 4
// vec4s of K (16 floats) of both operands are staged in workgroup memory, K-major, one vec4
// per thread and operand each; every output sums its dot products in the order of tile4.
const TILE_K = 4u;
var<workgroup> tA: array<vec4f, 256>; // [kk][row]: TILE_K x 64
var<workgroup> tB: array<vec4f, 256>;

@compute @workgroup_size(16, 16)
fn tiled(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let mb = wid.y * 64u;
  let nb = wid.x * 64u;
  let ba = wid.z * p.sa;
  let bb = wid.z * p.sb;
  // The vec4 this thread stages: row lr of the slab (clamped at the edge), K offset lk.
  let t = lid.y * 16u + lid.x;
  let lr = t / TILE_K;
  let lk = t - lr * TILE_K;
  let rowA = ba + min(mb + lr, p.M - 1u) * p.k4;
  let rowB = bb + min(nb + lr, p.N - 1u) * p.k4;
  var c: mat4x4f;
  for (var k0 = 0u; k0 < p.k4; k0 += TILE_K) {
    let k = k0 + lk;
    let inK = k < p.k4;
    tA[lk * 64u + lr] = select(vec4f(0.0), A[rowA + min(k, p.k4 - 1u)], inK);
    tB[lk * 64u + lr] = select(vec4f(0.0), B[rowB + min(k, p.k4 - 1u)], inK);
    workgroupBarrier();
    let kn = min(TILE_K, p.k4 - k0);
    for (var kk = 0u; kk < kn; kk++) {
      let o = kk * 64u;
      let x = mat4x4f(tA[o + lid.y], tA[o + lid.y + 16u], tA[o + lid.y + 32u], tA[o + lid.y + 48u]);
      let y = mat4x4f(tB[o + lid.x], tB[o + lid.x + 16u], tB[o + lid.x + 32u], tB[o + lid.x + 48u]);
      c += transpose(x) * y;
    }
    workgroupBarrier();
  }
  let bc = wid.z * p.sc;
  for (var i = 0u; i < 4u; i++) {
    let m = mb + lid.y + 16u * i;
    if (m < p.M) {
      for (var j = 0u; j < 4u; j++) {
        let n = nb + lid.x + 16u * j;
        if (n < p.N) { C[bc + m * p.N + n] = c[j][i]; }
      }
    }
  }
}

// pack: out[b, o, i] = S[b*sb + o*so + i*si] for i < I, 0 for I <= i < I4 (a multiple of 4),
// followed by zero vec4s up to `total` (a zero row that kernels point padding taps at).
// One thread per output vec4; so/si choose between a padded copy and a transpose.
override WG: u32 = 256u;
struct PackParams { total: u32, rows: u32, O: u32, i4: u32, I: u32, sb: u32, so: u32, si: u32 }
@group(0) @binding(0) var<storage, read> S: array<f32>;
@group(0) @binding(1) var<storage, read_write> D: array<vec4f>;
@group(0) @binding(2) var<uniform> q: PackParams;

@compute @workgroup_size(WG)
fn pack(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * WG;
  if (t >= q.total) { return; }
  if (t >= q.rows) {
    D[t] = vec4f(0.0);
    return;
  }
  let per = q.O * q.i4;
  let b = t / per;
  let r = t - b * per;
  let o = r / q.i4;
  let i = (r - o * q.i4) * 4u + vec4u(0u, 1u, 2u, 3u);
  let ok = i < vec4u(q.I);
  let at = b * q.sb + o * q.so + min(i, vec4u(q.I - 1u)) * q.si;
  D[t] = select(vec4f(0.0), vec4f(S[at.x], S[at.y], S[at.z], S[at.w]), ok);
}

// pack4: the transposing pack (so = 1) when O, sb and si are multiples of 4: a thread reads
// 4 source rows (channels) of 4 consecutive o (pixels) as vec4s and writes them transposed,
// 4 loads + 4 stores per 16 values instead of 16 scalar loads.
struct Pack4Params { total: u32, blocks: u32, ob: u32, i4: u32, I: u32, sb4: u32, si4: u32 }
@group(0) @binding(2) var<uniform> q4: Pack4Params;

@compute @workgroup_size(WG)
fn pack4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * WG;
  if (t >= q4.total) { return; }
  let rows = q4.blocks * 4u; // vec4s of packed data; the zero rows follow
  if (t >= q4.blocks) {
    D[rows + t - q4.blocks] = vec4f(0.0);
    return;
  }
  let per = q4.ob * q4.i4;
  let b = t / per;
  let r = t - b * per;
  let o4 = r / q4.i4;
  let ib = r - o4 * q4.i4;
  let i = ib * 4u + vec4u(0u, 1u, 2u, 3u);
  let src = b * q4.sb4 + min(i, vec4u(q4.I - 1u)) * q4.si4 + o4;
  let z = vec4f(0.0);
  let m = transpose(mat4x4f(
    select(z, A[src.x], i.x < q4.I),
    select(z, A[src.y], i.y < q4.I),
    select(z, A[src.z], i.z < q4.I),
    select(z, A[src.w], i.w < q4.I),
  ));
  let dst = (b * q4.ob + o4) * 4u * q4.i4 + ib;
  D[dst] = m[0];
  D[dst + q4.i4] = m[1];
  D[dst + 2u * q4.i4] = m[2];
  D[dst + 3u * q4.i4] = m[3];
}
