// conv2d_bwd_weight.wgsl with its operands read from their mirror textures (Engine.mirror): the CPU
// adapter's "tex:" variants (runtime/ops/conv.ts).
@group(0) @binding(0) var X: texture_storage_2d<rgba32float, read>;
@group(0) @binding(1) var GY: texture_storage_2d<rgba32float, read>;
//! include texel
fn xat(i: u32) -> vec4f { return texel(X, i); }
fn gat(i: u32) -> vec4f { return texel(GY, i); }
//! include conv2d_bwd_weight_body
