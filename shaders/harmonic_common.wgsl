// Shared by harmonic_fill (one workgroup per plane) and harmonic_step (one phase per launch):
// the red-black SOR sweep of the discrete Laplace equation on the holes of an image plane.
// A pixel's colour is (h + w) mod 2, so a colour's pixels read only the other colour's and a
// half-sweep can update them all in place at once. Neighbours outside the image do not count.

struct Params { planes: u32, C: u32, H: u32, W: u32, iters: u32, omega: f32, phase: u32 }

/** Pixel i of the plane whose mask starts at mb is a hole (mask 1). */
fn isHole(mb: u32, i: u32) -> bool { return M[mb + i] > 0.5; }

/** How many of pixel (h, w)'s 4 neighbours lie inside the H x W image. */
fn inside(h: u32, w: u32) -> f32 {
  return f32(select(0u, 1u, h > 0u) + select(0u, 1u, h + 1u < p.H) +
    select(0u, 1u, w > 0u) + select(0u, 1u, w + 1u < p.W));
}
