// Layers with PyTorch parameter names: Conv2d (weight, bias), Linear, BatchNorm2d (weight,
// bias, running_mean, running_var), GatedConv2d and SNConv2d for the purifier and its critic.

import { type Tensor, tidy } from "../tensor.ts";
import * as ops from "../ops/mod.ts";
import type { GateActivation } from "../ops/gate.ts";
import { Module } from "./module.ts";
import { defaultWeight, type InitRng } from "./init.ts";

export interface Conv2dConfig {
  stride?: number;
  padding?: number;
  dilation?: number;
  bias?: boolean;
}

export class Conv2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  constructor(
    rng: InitRng,
    readonly cin: number,
    readonly cout: number,
    readonly k: number,
    readonly cfg: Conv2dConfig = {},
  ) {
    super();
    const fanIn = cin * k * k;
    this.weight = this.param("weight", defaultWeight(rng, cout * fanIn, fanIn), [cout, cin, k, k]);
    this.bias = cfg.bias === false
      ? null
      : this.param("bias", defaultWeight(rng, cout, fanIn), [cout]);
  }
  forward(x: Tensor): Tensor {
    return ops.conv2d(x, this.weight, this.bias, this.cfg);
  }
}

export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  constructor(rng: InitRng, readonly cin: number, readonly cout: number, bias = true) {
    super();
    this.weight = this.param("weight", defaultWeight(rng, cout * cin, cin), [cout, cin]);
    this.bias = bias ? this.param("bias", defaultWeight(rng, cout, cin), [cout]) : null;
  }
  forward(x: Tensor): Tensor {
    return ops.linear(x.ndim === 2 ? x : ops.flatten(x), this.weight, this.bias ?? undefined);
  }
}

export class BatchNorm2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly runningMean: Tensor;
  readonly runningVar: Tensor;
  constructor(readonly channels: number, readonly momentum = 0.1, readonly eps = 1e-5) {
    super();
    this.weight = this.param("weight", new Float32Array(channels).fill(1), [channels]);
    this.bias = this.param("bias", new Float32Array(channels), [channels]);
    this.runningMean = this.buffer("running_mean", new Float32Array(channels), [channels]);
    this.runningVar = this.buffer("running_var", new Float32Array(channels).fill(1), [channels]);
  }
  forward(x: Tensor): Tensor {
    return ops.batchNorm(x, this.weight, this.bias, this.runningMean, this.runningVar, {
      training: this.training,
      momentum: this.momentum,
      eps: this.eps,
    });
  }
}

/** A gated layer's activation: the gate op's list (runtime/ops/gate.ts), kept in one place. */
export type Activation = GateActivation;

/** Gated convolution (Yu et al., DeepFillv2): out = act(conv(x)) * sigmoid(mask_conv(x)); the
 * gates learn where the mask makes the input invalid. The features and gates are separate
 * parameters (as in common PyTorch ports), computed by one conv (forward). */
export class GatedConv2d extends Module {
  readonly conv: Conv2d;
  readonly maskConv: Conv2d;
  constructor(
    rng: InitRng,
    readonly cin: number,
    readonly cout: number,
    k: number,
    cfg: Conv2dConfig = {},
    readonly act: Activation = "elu",
    gain = 1,
  ) {
    super();
    this.conv = this.child("conv", new Conv2d(rng, cin, cout, k, cfg));
    this.maskConv = this.child("mask_conv", new Conv2d(rng, cin, cout, k, cfg));
    // `gain` scales the feature weights after PyTorch's default draw (the same draws, so gain 1
    // is bit-identical): the default keeps a third of the input's variance and the gate halves
    // the signal, so a deep chain of gated layers shrinks activations and gradients ~3.5x a
    // layer (gradient norms 1e-10 at the first layer of a 14-layer purifier stage).
    if (gain !== 1) {
      tidy(() => ops.assign(this.conv.weight, ops.scale(this.conv.weight, gain)));
    }
  }
  /** act(conv(x)) * sigmoid(maskConv(x)) as ONE conv over both weight sets (stacked along the
   * output channels) and one gate kernel (ops.gatedActivation): the input is packed and mirrored
   * once, narrow layers fill tile16's 16-channel blocks, and the gating is one launch each way
   * (the quick preset's pre-training step 1.2x faster than two convs and fused elementwise
   * ops). Each output channel's conv sum is the same as a separate conv's. */
  forward(x: Tensor): Tensor {
    const w = ops.concat([this.conv.weight, this.maskConv.weight], 0);
    const [b, bm] = [this.conv.bias, this.maskConv.bias];
    const bias = b && bm ? ops.concat([b, bm], 0) : null;
    return ops.gatedActivation(ops.conv2d(x, w, bias, this.conv.cfg), this.act);
  }
}

/** Conv2d whose weight is spectrally normalized on every call (SN-PatchGAN). The state-dict
 * names are weight, bias and weight_u (the power-iteration vector). */
export class SNConv2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly u: Tensor;
  constructor(
    rng: InitRng,
    readonly cin: number,
    readonly cout: number,
    readonly k: number,
    readonly cfg: Conv2dConfig = {},
  ) {
    super();
    const fanIn = cin * k * k;
    this.weight = this.param("weight", defaultWeight(rng, cout * fanIn, fanIn), [cout, cin, k, k]);
    this.bias = this.param("bias", defaultWeight(rng, cout, fanIn), [cout]);
    const u = rng.normal(cout, 1);
    const n = Math.hypot(...u);
    this.u = this.buffer("weight_u", u.map((v) => v / n), [cout]);
  }
  forward(x: Tensor): Tensor {
    const w = ops.spectralNorm(this.weight, this.u, { training: this.training });
    return ops.conv2d(x, w, this.bias, this.cfg);
  }
}
