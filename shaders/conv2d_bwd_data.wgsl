// Input gradient of a 2-D convolution (also the forward of a transposed convolution):
// gX[n,ci,iy,ix] = sum_{co,ky,kx} W[co,ci,ky,kx] * gY[n,co,oy,ox] with iy = oy*S - P + ky*D.
// Gather form (each thread owns its outputs, no atomics) on channels-last operands:
//   GY [N*Ho*Wo + 1, c4 vec4s]  gY as NHWC with Cout padded to 4, plus a zero row,
//   Wt [Cin*KH*KW, c4 vec4s]    W as [Cin, KH, KW, Cout] with Cout padded,
//   GX [N, Cin, H, W]           NCHW output.
// A thread owns a block of input pixels x input channels. Per tap, the source output pixel
// of each input pixel is found once (divisibility by the stride, range; the zero row
// otherwise); the inner loop over output channels is vec4 loads and dot products only (see
// conv2d_fwd.wgsl for why loads are what count on the CPU adapter).
// With a stride S, only 1/S^2 of the taps reach a given input pixel, and which ones depends
// on the pixel's phase (iy mod S, ix mod S). Pixels are therefore enumerated phase by phase
// (q -> phase, n, iy div S, ix div S; ragged phases leave holes that are skipped) so that a
// thread's pixels share their phase and taps that reach none of them are skipped.
// Entry points: tile16 (16 pixels x 16 channels, CPU adapter), tile16x8 and tile16x4 (16 pixels
// x 8 or 4 channels, for layers with few input channels) and tile4 (4 x 4), from
// conv_blocks.wgsl; tiled (4 x 4 per thread over operands staged in workgroup memory, GPUs).
@group(0) @binding(0) var<storage, read> GY: array<vec4f>;
@group(0) @binding(1) var<storage, read> Wt: array<vec4f>;
fn xv(i: u32) -> vec4f { return GY[i]; }
fn wv(i: u32) -> vec4f { return Wt[i]; }
//! include conv2d_bwd_data_body
