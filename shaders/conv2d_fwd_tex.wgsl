// conv2d_fwd.wgsl with its operands read from their mirror textures (Engine.mirror): the CPU
// adapter's "tex:" variants (runtime/ops/conv.ts).
@group(0) @binding(0) var X: texture_storage_2d<rgba32float, read>;
@group(0) @binding(1) var Wt: texture_storage_2d<rgba32float, read>;
//! include texel
fn xv(i: u32) -> vec4f { return texel(X, i); }
fn wv(i: u32) -> vec4f { return texel(Wt, i); }
//! include conv2d_fwd_body
