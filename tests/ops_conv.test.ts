import { assert, checkOp, gpu, input, randInt, rng } from "./helpers/check.ts";
import {
  conv2dRef,
  type ConvRefGeometry,
  convTranspose2dRef,
  type ConvTRefGeometry,
} from "./ref/conv.ts";
import * as ops from "../runtime/ops/mod.ts";
import { Tensor, tidy } from "../runtime/tensor.ts";

await gpu();

function randomGeometry(r: () => number): ConvRefGeometry {
  const KH = randInt(r, 1, 3), KW = randInt(r, 1, 3);
  const dilation: [number, number] = [randInt(r, 1, 2), randInt(r, 1, 2)];
  const padding: [number, number] = [randInt(r, 0, 2), randInt(r, 0, 2)];
  const stride: [number, number] = [randInt(r, 1, 2), randInt(r, 1, 3)];
  const H = randInt(r, dilation[0] * (KH - 1) + 1, 9),
    W = randInt(r, dilation[1] * (KW - 1) + 1, 8);
  return {
    N: randInt(r, 1, 3),
    Cin: randInt(r, 1, 6),
    H,
    W,
    Cout: randInt(r, 1, 7),
    KH,
    KW,
    stride,
    padding,
    dilation,
  };
}

Deno.test("conv2d matches float64 reference (stride, padding, dilation, bias), with gradients", async () => {
  const r = rng(21);
  for (let t = 0; t < 10; t++) {
    const g = randomGeometry(r);
    const bias = t % 2 === 0;
    const inputs = [input([g.N, g.Cin, g.H, g.W], r), input([g.Cout, g.Cin, g.KH, g.KW], r)];
    if (bias) inputs.push(input([g.Cout], r));
    await checkOp(
      `conv2d ${JSON.stringify(g)} bias=${bias}`,
      ([x, w, b]) =>
        ops.conv2d(x, w, b, { stride: g.stride, padding: g.padding, dilation: g.dilation }),
      conv2dRef(g, bias),
      inputs,
    );
  }
});

Deno.test("conv2d 3x3 with many channels (split weight gradient, edge tiles)", async () => {
  const r = rng(22);
  const g: ConvRefGeometry = {
    N: 5,
    Cin: 19,
    H: 7,
    W: 6,
    Cout: 13,
    KH: 3,
    KW: 3,
    stride: [1, 1],
    padding: [1, 1],
    dilation: [1, 1],
  };
  await checkOp(
    "conv2d c19->13",
    ([x, w, b]) => ops.conv2d(x, w, b, { padding: 1 }),
    conv2dRef(g, true),
    [
      input([g.N, g.Cin, g.H, g.W], r),
      input([g.Cout, g.Cin, 3, 3], r),
      input([g.Cout], r),
    ],
  );
});

Deno.test("convTranspose2d matches float64 reference, with gradients", async () => {
  const r = rng(23);
  for (let t = 0; t < 8; t++) {
    const base = randomGeometry(r);
    const outputPadding: [number, number] = [
      randInt(r, 0, Math.max(base.stride[0], base.dilation[0]) - 1),
      randInt(r, 0, Math.max(base.stride[1], base.dilation[1]) - 1),
    ];
    const g: ConvTRefGeometry = {
      ...base,
      H: randInt(r, 1, 6),
      W: randInt(r, 1, 5),
      outputPadding,
    };
    g.padding = [
      Math.min(g.padding[0], (g.KH - 1) * g.dilation[0]),
      Math.min(g.padding[1], (g.KW - 1) * g.dilation[1]),
    ];
    const bias = t % 2 === 1;
    const inputs = [input([g.N, g.Cin, g.H, g.W], r), input([g.Cin, g.Cout, g.KH, g.KW], r)];
    if (bias) inputs.push(input([g.Cout], r));
    await checkOp(
      `convTranspose2d ${JSON.stringify(g)} bias=${bias}`,
      ([x, w, b]) =>
        ops.convTranspose2d(x, w, b, {
          stride: g.stride,
          padding: g.padding,
          dilation: g.dilation,
          outputPadding: g.outputPadding,
        }),
      convTranspose2dRef(g, bias),
      inputs,
    );
  }
});

Deno.test("conv shape errors name the op and the fix", () => {
  tidy(() => {
    const x = Tensor.fromData(new Float32Array(2 * 3 * 4 * 4).fill(1), [2, 3, 4, 4]);
    const w = Tensor.fromData(new Float32Array(5 * 2 * 3 * 3).fill(1), [5, 2, 3, 3]);
    assert.throws(
      () => ops.conv2d(x, w),
      /conv2d: input \[2,3,4,4\] has 3 channels but weight \[5,2,3,3\] expects 2/,
    );
    const w3 = Tensor.fromData(new Float32Array(5 * 3 * 5 * 5).fill(1), [5, 3, 5, 5]);
    assert.throws(() => ops.conv2d(x, w3), /smaller than the dilated kernel/);
    assert.throws(() => ops.conv2d(x, w3, null, { stride: 0 }), /stride must be an integer >= 1/);
    const b = Tensor.fromData(new Float32Array(4).fill(1), [4]);
    assert.throws(
      () => ops.conv2d(x, w3, b, { padding: 2 }),
      /bias has shape \[4\], expected \[5\]/,
    );
  });
});

Deno.test("conv2d and convTranspose2d on 4-aligned shapes (vec4 packing fast paths)", async () => {
  const r = rng(24);
  const g: ConvRefGeometry = {
    N: 2,
    Cin: 8,
    H: 8,
    W: 8,
    Cout: 16,
    KH: 3,
    KW: 3,
    stride: [2, 2],
    padding: [1, 1],
    dilation: [1, 1],
  };
  await checkOp(
    "conv2d aligned s2",
    ([x, w, b]) => ops.conv2d(x, w, b, { stride: 2, padding: 1 }),
    conv2dRef(g, true),
    [
      input([2, 8, 8, 8], r),
      input([16, 8, 3, 3], r),
      input([16], r),
    ],
  );
  const g1: ConvRefGeometry = { ...g, stride: [1, 1] };
  await checkOp(
    "conv2d aligned s1",
    ([x, w]) => ops.conv2d(x, w, null, { padding: 1 }),
    conv2dRef(g1, false),
    [
      input([2, 8, 8, 8], r),
      input([16, 8, 3, 3], r),
    ],
  );
  const gt: ConvTRefGeometry = { ...g, Cin: 8, Cout: 4, H: 4, W: 4, outputPadding: [1, 1] };
  await checkOp(
    "convTranspose2d aligned",
    ([x, w]) => ops.convTranspose2d(x, w, null, { stride: 2, padding: 1, outputPadding: 1 }),
    convTranspose2dRef(gt, false),
    [
      input([2, 8, 4, 4], r),
      input([8, 4, 3, 3], r),
    ],
  );
});
