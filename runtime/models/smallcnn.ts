// A small, fast CNN for CPU runs: three conv-bn-relu stages (the last two downsample with
// stride 2), one more downsampling conv, global average pooling and a linear head.

import type { Tensor } from "../tensor.ts";
import * as ops from "../ops/mod.ts";
import { BatchNorm2d, Conv2d, InitRng, Linear } from "../nn/mod.ts";
import { Classifier, type ClassifierOptions } from "./classifier.ts";

export interface SmallCnnOptions extends ClassifierOptions {
  /** Channels of the four conv stages; default [16, 32, 64, 128] (CPU-sized). */
  widths?: [number, number, number, number];
}

export class SmallCnn extends Classifier {
  readonly arch = "smallcnn";
  readonly convs: Conv2d[] = [];
  readonly bns: BatchNorm2d[] = [];
  readonly fc: Linear;
  readonly stemChannels: number;
  constructor(o: SmallCnnOptions = {}) {
    super(o);
    const rng = new InitRng(o.seed ?? 0);
    const w = o.widths ?? [16, 32, 64, 128];
    if (w.length !== 4 || !w.every((c) => Number.isInteger(c) && c >= 1)) {
      throw new Error(`smallcnn widths: expected four positive integers, got [${w}]`);
    }
    this.stemChannels = w[0];
    let cin = 3;
    w.forEach((c, i) => {
      this.convs.push(
        this.child(
          `conv${i + 1}`,
          new Conv2d(rng, cin, c, 3, { padding: 1, stride: i === 0 ? 1 : 2, bias: false }),
        ),
      );
      this.bns.push(this.child(`bn${i + 1}`, new BatchNorm2d(c)));
      cin = c;
    });
    this.fc = this.child("fc", new Linear(rng, cin, this.numClasses));
  }
  protected logits(x: Tensor): Tensor {
    let h = x;
    for (let i = 0; i < this.convs.length; i++) {
      h = ops.relu(this.bns[i].forward(this.convs[i].forward(h)));
    }
    return this.fc.forward(ops.mean(h, [2, 3]));
  }
}
