// Weight gradient of a 2-D convolution:
// gW[co,ci,ky,kx] = sum_{n,oy,ox} gY[n,co,oy,ox] * X[n,ci,oy*S-P+ky*D,ox*S-P+kx*D],
// on channels-last operands X [N*H*W, ci4 vec4s] and GY [N*Ho*Wo, co4 vec4s] (channels padded
// to 4, see packRows4). A thread owns one tap and a block of output x input channels; per
// pixel it reads its channels with vec4 loads and adds their outer product (see
// conv2d_fwd.wgsl for why loads are what count on the CPU adapter). The output pixels whose
// input pixel lies inside the image are found per tap up front, so the inner loop has no
// checks. The batch is split into chunks written to separate partial planes (summed
// afterwards in a fixed order): more threads on a big GPU, and still no atomics.
// Entry points: tile16 (16 x 16 channels, CPU adapter), tile16x4 (16 x 4, CPU adapter with at
// most 4 input channels, e.g. RGB), tile4 (4 x 4) and tiled (4 x 4 per thread over pixels
// staged in workgroup memory, GPUs).
@group(0) @binding(0) var<storage, read> X: array<vec4f>;
@group(0) @binding(1) var<storage, read> GY: array<vec4f>;
fn xat(i: u32) -> vec4f { return X[i]; }
fn gat(i: u32) -> vec4f { return GY[i]; }
//! include conv2d_bwd_weight_body
