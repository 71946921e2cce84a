// The elementwise ops, each declared once: its WGSL expression and its derivative. The fused
// kernels (runtime/graph/fuse.ts) are generated from the expressions; the autodiff rules in
// ops/elementwise.ts are built from the derivative entries, which are themselves ops of this
// table (so a backward chain fuses like a forward one).
//
// In the templates {0} {1} {2} are the operands and {a} {b} the op's scalar parameters.

export interface UnaryOp {
  /** f(x). */
  fwd: string;
  /** f'(x) (the backward is gy * f'(x)); absent: the op has no gradient. */
  deriv?: string;
  /** Scalar parameters the op takes (a, then b). */
  scalars?: number;
}

export const UNARY = {
  neg: { fwd: "-{0}", deriv: "-1.0" },
  exp: { fwd: "exp({0})", deriv: "exp({0})" },
  log: { fwd: "log({0})", deriv: "1.0 / {0}" },
  sqrt: { fwd: "sqrt({0})", deriv: "0.5 / sqrt({0})" },
  rsqrt: { fwd: "inverseSqrt({0})", deriv: "-0.5 * inverseSqrt({0}) / {0}" },
  abs: { fwd: "abs({0})", deriv: "sign({0})" },
  relu: { fwd: "max({0}, 0.0)", deriv: "select(0.0, 1.0, {0} > 0.0)" },
  leakyRelu: {
    fwd: "select({a} * {0}, {0}, {0} > 0.0)",
    deriv: "select({a}, 1.0, {0} > 0.0)",
    scalars: 1,
  },
  elu: {
    fwd: "select({a} * (exp({0}) - 1.0), {0}, {0} > 0.0)",
    deriv: "select({a} * exp({0}), 1.0, {0} > 0.0)",
    scalars: 1,
  },
  sigmoid: { fwd: "sigm({0})", deriv: "sigm({0}) * (1.0 - sigm({0}))" },
  tanh: { fwd: "tanh({0})", deriv: "1.0 - tanh({0}) * tanh({0})" },
  sign: { fwd: "sign({0})", deriv: "0.0" },
  clamp: {
    fwd: "clamp({0}, {a}, {b})",
    deriv: "select(0.0, 1.0, {0} >= {a} && {0} <= {b})",
    scalars: 2,
  },
  affine: { fwd: "{a} * {0} + {b}", deriv: "{a}", scalars: 2 },
  square: { fwd: "{0} * {0}", deriv: "2.0 * {0}" },
  reciprocal: { fwd: "1.0 / {0}", deriv: "-1.0 / ({0} * {0})" },
  powScalar: { fwd: "pow({0}, {a})", deriv: "{a} * pow({0}, {a} - 1.0)", scalars: 1 },
  step: { fwd: "select(0.0, 1.0, {0} > {a})", scalars: 1 },
  floor: { fwd: "floor({0})" },
  /** A copy (detach, clone, expand). */
  copy: { fwd: "{0}", deriv: "1.0" },
} satisfies Record<string, UnaryOp>;
export type UnaryName = keyof typeof UNARY;

/** Binary ops; their gradients (with broadcasting) are written in ops/elementwise.ts in terms
 * of these same ops. */
export const BINARY = {
  add: "{0} + {1}",
  sub: "{0} - {1}",
  mul: "{0} * {1}",
  div: "{0} / {1}",
  maximum: "max({0}, {1})",
  minimum: "min({0}, {1})",
  pow: "pow({0}, {1})",
  gt: "select(0.0, 1.0, {0} > {1})",
  lt: "select(0.0, 1.0, {0} < {1})",
  ge: "select(0.0, 1.0, {0} >= {1})",
  le: "select(0.0, 1.0, {0} <= {1})",
  eq: "select(0.0, 1.0, {0} == {1})",
  /** gy * f'(x) of a unary op, generated per op below: `d:<name>`. */
} satisfies Record<string, string>;
export type BinaryName = keyof typeof BINARY;

/** cond != 0 ? a : b. */
export const WHERE = "select({2}, {1}, {0} != 0.0)";

/** Helpers the expressions call (sigm4: the same per lane, for kernels on vec4s). */
export const PRELUDE = `
fn sigm(x: f32) -> f32 {
  if (x >= 0.0) { return 1.0 / (1.0 + exp(-x)); }
  let e = exp(x);
  return e / (1.0 + e);
}
fn sigm4(x: vec4f) -> vec4f {
  let e = exp(x);
  return select(e / (1.0 + e), 1.0 / (1.0 + exp(-x)), x >= vec4f(0.0));
}
`;

/** An expression written for f32 operands, for vec4f operands: literals splat, the logical
 * and is component-wise, sigm is sigm4. */
export function vectorized(expr: string): string {
  return expr.replace(/(?<![\w.])(\d+\.\d+)/g, "vec4f($1)").replaceAll("&&", "&")
    .replaceAll("sigm(", "sigm4(");
}

/** The expression of every op name the fuser knows: unary forwards, `d:<unary>` backward
 * (gy * f'(x), operands x and gy), binaries and where. */
export function template(op: string): { expr: string; arity: number; scalars: number } {
  if (op === "where") return { expr: WHERE, arity: 3, scalars: 0 };
  if (op in BINARY) return { expr: BINARY[op as BinaryName], arity: 2, scalars: 0 };
  if (op.startsWith("d:")) {
    const u = UNARY[op.slice(2) as UnaryName] as UnaryOp | undefined;
    if (!u?.deriv) throw new Error(`op table: ${op.slice(2)} has no derivative`);
    return { expr: `{1} * (${u.deriv})`, arity: 2, scalars: u.scalars ?? 0 };
  }
  const u = UNARY[op as UnaryName] as UnaryOp | undefined;
  if (!u) throw new Error(`op table: unknown elementwise op "${op}"`);
  return { expr: u.fwd, arity: 1, scalars: u.scalars ?? 0 };
}
