// Shared by harmonic_fill (one workgroup per plane) and harmonic_step (one phase per launch):
// the red-black SOR sweep of the discrete Laplace equation on the holes of an image plane.
// A pixel's colour is (h + w) mod 2, so a colour's pixels read only the other colour's and a
// half-sweep can update them all in place at once. Neighbours outside the image do not count.
// Each including shader defines `value(base, i)`, the current value of pixel i of the plane
// starting at base (workgroup memory in one, the global buffer in the other).

struct Params { planes: u32, C: u32, H: u32, W: u32, iters: u32, omega: f32, phase: u32 }

/** Where pixel i of `plane` sits: its plane's offset, its mask's offset, its row and column. */
struct Pixel { base: u32, mb: u32, h: u32, w: u32 }

fn pixelOf(plane: u32, i: u32) -> Pixel {
  let hw = p.H * p.W;
  let h = i / p.W;
  return Pixel(plane * hw, (plane / p.C) * hw, h, i - h * p.W);
}

fn colourOf(q: Pixel) -> u32 { return (q.h + q.w) & 1u; }

/** Pixel i of the plane whose mask starts at mb is a hole (mask 1). */
fn isHole(mb: u32, i: u32) -> bool { return M[mb + i] > 0.5; }

/** How many of pixel (h, w)'s 4 neighbours lie inside the H x W image. */
fn inside(h: u32, w: u32) -> f32 {
  return f32(select(0u, 1u, h > 0u) + select(0u, 1u, h + 1u < p.H) +
    select(0u, 1u, w > 0u) + select(0u, 1u, w + 1u < p.W));
}

/** The forward updates pixel i: a hole with a neighbour inside the image. */
fn forwardTouches(q: Pixel, i: u32) -> bool { return isHole(q.mb, i) && inside(q.h, q.w) > 0.0; }

/** The adjoint changes pixel i: a hole, or a pixel with a hole among its neighbours (it gets
 * their shares). Elsewhere it adds zeros, so skipping those pixels only keeps a -0 sign. */
fn adjointTouches(q: Pixel, i: u32) -> bool {
  return isHole(q.mb, i) || (q.h > 0u && isHole(q.mb, i - p.W)) ||
    (q.h + 1u < p.H && isHole(q.mb, i + p.W)) || (q.w > 0u && isHole(q.mb, i - 1u)) ||
    (q.w + 1u < p.W && isHole(q.mb, i + 1u));
}

/** Forward half-sweep at hole pixel i (with c > 0 neighbours inside): its SOR update. */
fn sorUpdate(q: Pixel, i: u32, c: f32) -> f32 {
  var up = 0.0; var down = 0.0; var left = 0.0; var right = 0.0;
  if (q.h > 0u) { up = value(q.base, i - p.W); }
  if (q.h + 1u < p.H) { down = value(q.base, i + p.W); }
  if (q.w > 0u) { left = value(q.base, i - 1u); }
  if (q.w + 1u < p.W) { right = value(q.base, i + 1u); }
  return (1.0 - p.omega) * value(q.base, i) + p.omega * (((up + down) + (left + right)) / c);
}

/** omega * g_k / c_k of neighbour k at (h, w) when it is a hole (it was updated from pixel i). */
fn share(q: Pixel, k: u32, h: u32, w: u32) -> f32 {
  if (!isHole(q.mb, k)) { return 0.0; }
  let c = inside(h, w);
  if (c == 0.0) { return 0.0; }
  return p.omega * (value(q.base, k) / c);
}

/** Phase s of the adjoint at pixel i (of colour s mod 2): first the scaling of half-sweep
 * 2K - s (its own holes), then the shares that half-sweep 2K - 1 - s sent from the other
 * colour. */
fn adjointUpdate(q: Pixel, i: u32, s: u32) -> f32 {
  var g = value(q.base, i);
  if (s > 0u && isHole(q.mb, i) && inside(q.h, q.w) > 0.0) { g = (1.0 - p.omega) * g; }
  if (s < 2u * p.iters) {
    var up = 0.0; var down = 0.0; var left = 0.0; var right = 0.0;
    if (q.h > 0u) { up = share(q, i - p.W, q.h - 1u, q.w); }
    if (q.h + 1u < p.H) { down = share(q, i + p.W, q.h + 1u, q.w); }
    if (q.w > 0u) { left = share(q, i - 1u, q.h, q.w - 1u); }
    if (q.w + 1u < p.W) { right = share(q, i + 1u, q.h, q.w + 1u); }
    g = g + ((up + down) + (left + right));
  }
  return g;
}
