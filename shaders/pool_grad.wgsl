// Input gradient of pool.wgsl, one thread per INPUT element (no atomics): it visits, in a
// fixed order, the output windows that contain it and sums their gradients; for max pooling
// only the windows whose saved argmax (Arg, in-plane index) is this element contribute.
override WG: u32 = 256u;
override MODE: u32 = 0u;

struct Params {
  n: u32, H: u32, W: u32, Ho: u32, Wo: u32,
  KH: u32, KW: u32, SH: u32, SW: u32, PH: u32, PW: u32,
}
@group(0) @binding(0) var<storage, read> GY: array<f32>;
@group(0) @binding(1) var<storage, read> Arg: array<f32>;
@group(0) @binding(2) var<storage, read_write> GX: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

// Output positions o with o*S - P <= x < o*S - P + K, clipped to [0, O): [first, last].
fn span(x: u32, S: u32, P: u32, K: u32, O: u32) -> vec2i {
  let t = i32(x + P);
  let first = max(0, (t - i32(K) + i32(S)) / i32(S)); // ceil((t-K+1)/S) for t-K+1 >= 0
  let lo = select(first, 0, t - i32(K) + 1 <= 0);
  let hi = min(i32(O) - 1, t / i32(S));
  return vec2i(lo, hi);
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  let iw = i % p.W;
  let ih = (i / p.W) % p.H;
  let plane = i / (p.W * p.H);
  let at = f32(ih * p.W + iw);
  let obase = plane * p.Ho * p.Wo;
  let rh = span(ih, p.SH, p.PH, p.KH, p.Ho);
  let rw = span(iw, p.SW, p.PW, p.KW, p.Wo);
  var g = 0.0;
  for (var oh = rh.x; oh <= rh.y; oh++) {
    for (var ow = rw.x; ow <= rw.y; ow++) {
      let o = obase + u32(oh) * p.Wo + u32(ow);
      if (MODE == 0u) {
        if (Arg[o] == at) { g += GY[o]; }
      } else {
        g += GY[o];
      }
    }
  }
  if (MODE == 1u) { g = g / f32(p.KH * p.KW); }
  GX[i] = g;
}
