// The 4-neighbour sum of each pixel of x [N*C planes of H x W], zeros outside the image:
// y = (x[h-1,w] + x[h+1,w]) + (x[h,w-1] + x[h,w+1]). The stencil is symmetric, so it is its
// own adjoint: the backward is the same kernel on the output gradient.
override WG: u32 = 256u;

struct Params { n: u32, H: u32, W: u32 }
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

fn at(base: u32, h: i32, w: i32) -> f32 {
  if (h < 0 || w < 0 || h >= i32(p.H) || w >= i32(p.W)) { return 0.0; }
  return X[base + u32(h) * p.W + u32(w)];
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  let hw = p.H * p.W;
  let base = (i / hw) * hw;
  let r = i - base;
  let h = i32(r / p.W);
  let w = i32(r - u32(h) * p.W);
  Y[i] = (at(base, h - 1, w) + at(base, h + 1, w)) + (at(base, h, w - 1) + at(base, h, w + 1));
}
