// Direct (implicit-GEMM) 2-D convolution on channels-last operands:
//   X  [N*H*W + 1, c4 vec4s]    the input as NHWC with Cin padded to 4 (packRows4), plus a zero
//                               row that padding taps point at (so loads never branch),
//   Wt [Cout*KH*KW, c4 vec4s]   the weight as [Cout, KH, KW, Cin] with Cin padded,
//   Y  [N, Cout, Ho, Wo]        NCHW output.
// A thread owns a block of output pixels (flattened over n, oy, ox) x output channels and,
// per kernel tap, reads 4 input channels of each pixel and each weight row with one vec4
// load (on the CPU adapter every storage load is a loop over the SIMD lanes: the number of
// loads, not of FLOPs, sets the speed). A 4x4 block is a mat4x4f:
// (transpose(Xs) * Ws)[j][i] = dot(x_i, w_j) over 4 input channels.
// A tap whose rows are all the zero row (padding, e.g. a dilated kernel on a small map) is
// skipped: its products are zeros, and adding a zero to a sum that started at +0 never changes
// its bits, so the skip keeps every variant's result (for finite weights: an Inf or NaN weight
// times a padding zero is NaN, and variants skip over groups of 4 or 16 pixels).
// Entry points: tile16 (16 pixels x 16 channels, CPU adapter), tile16x8 and tile16x4 (16 pixels
// x 8 or 4 channels, for layers with few output channels, where tile16's block is mostly empty)
// and tile4 (4 x 4), written once in conv_blocks.wgsl for this kernel and the input gradient;
// tiled (4 x 4 per thread over operands staged in workgroup memory, GPUs).
@group(0) @binding(0) var<storage, read> X: array<vec4f>;
@group(0) @binding(1) var<storage, read> Wt: array<vec4f>;
fn xv(i: u32) -> vec4f { return X[i]; }
fn wv(i: u32) -> vec4f { return Wt[i]; }
//! include conv2d_fwd_body
