import { checkOp, gpu, input, randInt, rng } from "./helpers/check.ts";
import { binaryRef, unaryRef } from "./ref/basic.ts";
import * as ops from "../runtime/ops/mod.ts";
import type { Tensor } from "../runtime/tensor.ts";

await gpu();

Deno.test("binary ops with broadcasting match float64 reference, forward and backward", async () => {
  const r = rng(1);
  const cases: [string, (a: Tensor, b: Tensor) => Tensor, (a: number, b: number) => number][] = [
    ["add", ops.add, (a, b) => a + b],
    ["sub", ops.sub, (a, b) => a - b],
    ["mul", ops.mul, (a, b) => a * b],
    ["div", ops.div, (a, b) => a / b],
    ["maximum", ops.maximum, Math.max],
    ["minimum", ops.minimum, Math.min],
  ];
  const shapePairs: [number[], number[]][] = [
    [[3, 5], [3, 5]],
    [[2, 3, 4], [4]],
    [[2, 1, 4], [1, 3, 1]],
    [[1], [3, 2]],
    [[5, 3, 1, 2], [3, 7, 1]],
  ];
  for (const [name, f, g] of cases) {
    for (const [sa, sb] of shapePairs) {
      const lo = name === "div" ? 0.5 : -1;
      await checkOp(`${name} [${sa}]x[${sb}]`, ([a, b]) => f(a, b), binaryRef(g, sa, sb), [
        input(sa, r),
        input(sb, r, lo, 2),
      ]);
    }
  }
  await checkOp("pow", ([a, b]) => ops.pow(a, b), binaryRef(Math.pow, [4, 3], [3]), [
    input([4, 3], r, 0.5, 2),
    input([3], r, -1.5, 1.5),
  ]);
});

Deno.test("unary ops match float64 reference, forward and backward", async () => {
  const r = rng(2);
  const sig = (x: number) => 1 / (1 + Math.exp(-x));
  const cases: [string, (x: Tensor) => Tensor, (x: number) => number, number, number][] = [
    ["neg", ops.neg, (x) => -x, -2, 2],
    ["exp", ops.exp, Math.exp, -3, 3],
    ["log", ops.log, Math.log, 0.1, 4],
    ["sqrt", ops.sqrt, Math.sqrt, 0.1, 4],
    ["abs", ops.abs, Math.abs, -2, 2],
    ["relu", ops.relu, (x) => Math.max(x, 0), -2, 2],
    ["leakyRelu", (x) => ops.leakyRelu(x, 0.2), (x) => (x > 0 ? x : 0.2 * x), -2, 2],
    ["elu", (x) => ops.elu(x, 1.3), (x) => (x > 0 ? x : 1.3 * (Math.exp(x) - 1)), -2, 2],
    ["sigmoid", ops.sigmoid, sig, -30, 30],
    ["tanh", ops.tanh, Math.tanh, -3, 3],
    ["clamp", (x) => ops.clamp(x, -0.5, 0.7), (x) => Math.min(Math.max(x, -0.5), 0.7), -2, 2],
    ["affine", (x) => ops.affine(x, 2.5, -0.3), (x) => 2.5 * x - 0.3, -2, 2],
    ["square", ops.square, (x) => x * x, -2, 2],
    ["reciprocal", ops.reciprocal, (x) => 1 / x, 0.3, 3],
    ["powScalar", (x) => ops.powScalar(x, 1.7), (x) => Math.pow(x, 1.7), 0.2, 3],
    ["add scalar", (x) => ops.add(x, 0.75), (x) => x + 0.75, -2, 2],
    ["rsub scalar", (x) => ops.sub(2, x), (x) => 2 - x, -2, 2],
    ["div scalar", (x) => ops.div(x, 4), (x) => x / 4, -2, 2],
  ];
  for (const [name, f, g, lo, hi] of cases) {
    const shape = [randInt(r, 1, 3), randInt(r, 1, 5), randInt(r, 2, 9)];
    await checkOp(name, ([x]) => f(x), unaryRef(g), [input(shape, r, lo, hi)]);
  }
  // Sign has zero gradient; check forward only.
  await checkOp("sign", ([x]) => ops.sign(x), unaryRef(Math.sign), [input([3, 7], r)], {
    skipBackward: true,
  });
  await checkOp("floor", ([x]) => ops.floor(x), unaryRef(Math.floor), [input([5, 7], r, -4, 4)], {
    skipBackward: true,
  });
});

Deno.test("where broadcasts condition and operands; gradient flows to the chosen side", async () => {
  const r = rng(3);
  const cond = Float64Array.from({ length: 4 }, () => (r() > 0.5 ? 1 : 0));
  cond[0] = 1;
  cond[1] = 0;
  const ref = ([a, b]: Float64Array[]) => {
    const y = new Float64Array(3 * 4);
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < 4; j++) y[i * 4 + j] = cond[j] ? a[i * 4 + j] : b[i];
    }
    return y;
  };
  const { Tensor } = await import("../runtime/tensor.ts");
  await checkOp(
    "where",
    ([a, b]) => ops.where(Tensor.fromData(Float32Array.from(cond), [4]), a, b),
    ref,
    [input([3, 4], r), input([3, 1], r)],
  );
});
