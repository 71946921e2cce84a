// Direct (implicit-GEMM) 2-D convolution, NCHW, weight [Cout, Cin, KH, KW].
// Each thread computes a 4 x 4 block of outputs: 4 output channels for 4 consecutive
// output pixels (flattened over n, oy, ox). For each kernel tap the pixel offsets and padding
// checks are computed once; the inner loop over input channels is loads and FMAs only.
// Indices clamp at the edges so loads never branch; only the stores are guarded.
override WX: u32 = 8u;
override WY: u32 = 8u;
override HAS_BIAS: bool = false;

struct Params {
  N: u32, Cin: u32, H: u32, W: u32, Cout: u32, Ho: u32, Wo: u32, KH: u32, KW: u32,
  SH: u32, SW: u32, PH: u32, PW: u32, DH: u32, DW: u32,
}
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> Wt: array<f32>;
@group(0) @binding(2) var<storage, read> Bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
@group(0) @binding(4) var<storage, read> p: Params;

@compute @workgroup_size(WX, WY)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let hwo = p.Ho * p.Wo;
  let P = p.N * hwo;
  let q0 = (gid.x + gid.z * nwg.x * WX) * 4u;
  let c0 = gid.y * 4u;
  if (q0 >= P || c0 >= p.Cout) { return; }
  let hw = p.H * p.W;
  let kk = p.KH * p.KW;
  let wrow = p.Cin * kk;
  var xbase: array<i32, 4>;
  var iy0: array<i32, 4>;
  var ix0: array<i32, 4>;
  for (var i = 0u; i < 4u; i++) {
    let q = min(q0 + i, P - 1u);
    let n = q / hwo;
    let r = q - n * hwo;
    let oy = r / p.Wo;
    let ox = r - oy * p.Wo;
    xbase[i] = i32(n * p.Cin * hw);
    iy0[i] = i32(oy * p.SH) - i32(p.PH);
    ix0[i] = i32(ox * p.SW) - i32(p.PW);
  }
  var wbase: array<u32, 4>;
  for (var j = 0u; j < 4u; j++) { wbase[j] = min(c0 + j, p.Cout - 1u) * wrow; }
  var acc: array<vec4f, 4>;
  for (var ky = 0u; ky < p.KH; ky++) {
    for (var kx = 0u; kx < p.KW; kx++) {
      var off: vec4<u32>;
      var ok: vec4<bool>;
      for (var i = 0u; i < 4u; i++) {
        let iy = iy0[i] + i32(ky * p.DH);
        let ix = ix0[i] + i32(kx * p.DW);
        ok[i] = iy >= 0 && iy < i32(p.H) && ix >= 0 && ix < i32(p.W);
        off[i] = select(0u, u32(xbase[i] + iy * i32(p.W) + ix), ok[i]);
      }
      let tap = ky * p.KW + kx;
      for (var ci = 0u; ci < p.Cin; ci++) {
        let co = ci * hw;
        let xv = select(vec4f(0.0),
          vec4f(X[off.x + co], X[off.y + co], X[off.z + co], X[off.w + co]), ok);
        let wo = ci * kk + tap;
        acc[0] += Wt[wbase[0] + wo] * xv;
        acc[1] += Wt[wbase[1] + wo] * xv;
        acc[2] += Wt[wbase[2] + wo] * xv;
        acc[3] += Wt[wbase[3] + wo] * xv;
      }
    }
  }
  for (var j = 0u; j < 4u; j++) {
    let c = c0 + j;
    if (c < p.Cout) {
      var b = 0.0;
      if (HAS_BIAS) { b = Bias[c]; }
      for (var i = 0u; i < 4u; i++) {
        let q = q0 + i;
        if (q < P) {
          let n = q / hwo;
          Y[(n * p.Cout + c) * hwo + (q - n * hwo)] = acc[j][i] + b;
        }
      }
    }
  }
}
