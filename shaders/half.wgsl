// Vec4 i of a half-float operand packed by half_pack.wgsl, as float32.
fn halfVec4(w: vec2u) -> vec4f {
  return vec4f(unpack2x16float(w.x), unpack2x16float(w.y));
}
