// SN-PatchGAN critic (DeepFillv2): stride-2 5x5 convolutions with spectral normalization and
// leaky ReLU on [image, mask]; every output cell scores one patch. Hinge losses.

import type { Tensor } from "../tensor.ts";
import * as ops from "../ops/mod.ts";
import { InitRng, Module, SNConv2d } from "../nn/mod.ts";

export interface DiscriminatorOptions {
  width?: number;
  /** Number of stride-2 layers (DeepFillv2: 6 at 256px; 4 suits 32px). */
  layers?: number;
  seed?: number;
}

export class PatchDiscriminator extends Module {
  readonly convs: SNConv2d[] = [];
  constructor(o: DiscriminatorOptions = {}) {
    super();
    const c = o.width ?? 16, n = o.layers ?? 4;
    const rng = new InitRng((o.seed ?? 0) + 7919);
    let cin = 4;
    for (let i = 0; i < n; i++) {
      const cout = c * Math.min(4, 2 ** i);
      this.convs.push(
        this.child(`conv${i}`, new SNConv2d(rng, cin, cout, 5, { stride: 2, padding: 2 })),
      );
      cin = cout;
    }
  }
  /** Patch logits [N, P] for images in [0,1] and masks [N,1,H,W]. */
  score(x: Tensor, mask: Tensor): Tensor {
    let h = ops.concat([ops.affine(x, 2, -1), mask], 1);
    for (const m of this.convs) h = ops.leakyRelu(m.forward(h), 0.2);
    return ops.flatten(h);
  }
  forward(x: Tensor): Tensor {
    return this.score(x, ops.zeros([x.shape[0], 1, x.shape[2], x.shape[3]]));
  }
}
