// The slab step of the conv kernels' tiled entries (conv2d_fwd, conv2d_bwd_data): a 16x16
// workgroup over 64 pixels x 64 channels; thread (lx, ly) owns pixels lx + 16 i and channels
// ly + 16 j of the block, and stages one vec4 of each operand per slab.
const SLAB = 4u;
var<workgroup> sPix: array<vec4f, 256>; // [kk][pixel]
var<workgroup> sChan: array<vec4f, 256>; // [kk][channel]

/** Stages this thread's vec4s (`pix` of pixel row lr, `chan` of channel row lr, at slab offset
 * lk), then adds to acc, in order, the products of the slab's first kn vec4s:
 * acc[j][i] += dot(pixel lx + 16 i, channel ly + 16 j). Call from uniform control flow. */
fn slabProduct(
  acc0: mat4x4f,
  pix: vec4f,
  chan: vec4f,
  lr: u32,
  lk: u32,
  kn: u32,
  lid: vec3u,
) -> mat4x4f {
  sPix[lk * 64u + lr] = pix;
  sChan[lk * 64u + lr] = chan;
  workgroupBarrier();
  var acc = acc0;
  for (var kk = 0u; kk < kn; kk++) {
    let o = kk * 64u;
    let pm = transpose(mat4x4f(
      sPix[o + lid.x], sPix[o + lid.x + 16u], sPix[o + lid.x + 32u], sPix[o + lid.x + 48u],
    ));
    let cm = mat4x4f(
      sChan[o + lid.y], sChan[o + lid.y + 16u], sChan[o + lid.y + 32u], sChan[o + lid.y + 48u],
    );
    acc += pm * cm;
  }
  workgroupBarrier(); // nobody restages before every thread has read the slab
  return acc;
}
