// WideResNet-28-10 with RobustBench's state-dict names: conv1, block{1,2,3}.layer.{i}.
// {bn1,conv1,bn2,conv2,convShortcut}, bn1, fc. 36,479,194 parameters for 10 classes.

import type { Tensor } from "../tensor.ts";
import * as ops from "../ops/mod.ts";
import { BatchNorm2d, Conv2d, InitRng, Linear, Module, Sequential } from "../nn/mod.ts";
import { Classifier, type ClassifierOptions } from "./classifier.ts";

class WideBlock extends Module {
  readonly bn1: BatchNorm2d;
  readonly conv1: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly conv2: Conv2d;
  readonly convShortcut: Conv2d | null;
  constructor(rng: InitRng, readonly cin: number, readonly cout: number, stride: number) {
    super();
    this.bn1 = this.child("bn1", new BatchNorm2d(cin));
    this.conv1 = this.child(
      "conv1",
      new Conv2d(rng, cin, cout, 3, { stride, padding: 1, bias: false }),
    );
    this.bn2 = this.child("bn2", new BatchNorm2d(cout));
    this.conv2 = this.child("conv2", new Conv2d(rng, cout, cout, 3, { padding: 1, bias: false }));
    this.convShortcut = cin !== cout
      ? this.child("convShortcut", new Conv2d(rng, cin, cout, 1, { stride, bias: false }))
      : null;
  }
  forward(x: Tensor): Tensor {
    // Pre-activation; when the widths differ the shortcut also starts from the activation.
    const a = ops.relu(this.bn1.forward(x));
    const h = this.conv2.forward(ops.relu(this.bn2.forward(this.conv1.forward(a))));
    return ops.add(h, this.convShortcut ? this.convShortcut.forward(a) : x);
  }
}

class NetworkBlock extends Module {
  readonly layer: Sequential;
  constructor(rng: InitRng, n: number, cin: number, cout: number, stride: number) {
    super();
    const blocks = Array.from(
      { length: n },
      (_, i) => new WideBlock(rng, i === 0 ? cin : cout, cout, i === 0 ? stride : 1),
    );
    this.layer = this.child("layer", new Sequential(...blocks));
  }
  forward(x: Tensor): Tensor {
    return this.layer.forward(x);
  }
}

export interface WrnOptions extends ClassifierOptions {
  depth?: number;
  widen?: number;
}

export class WideResNet extends Classifier {
  readonly arch: string;
  readonly stemChannels: number;
  readonly conv1: Conv2d;
  readonly blocks: NetworkBlock[];
  readonly bn1: BatchNorm2d;
  readonly fc: Linear;
  constructor(o: WrnOptions = {}) {
    super(o);
    const depth = o.depth ?? 28, widen = o.widen ?? 10;
    if ((depth - 4) % 6 !== 0) throw new Error(`WideResNet: depth must be 6n+4, got ${depth}`);
    this.arch = `wrn${depth}_${widen}`;
    const n = (depth - 4) / 6;
    const rng = new InitRng(o.seed ?? 0);
    const ch = [16, 16 * widen, 32 * widen, 64 * widen];
    this.stemChannels = Math.max(ch[0], ch[1]); // the first block runs at stride 1
    this.conv1 = this.child("conv1", new Conv2d(rng, 3, ch[0], 3, { padding: 1, bias: false }));
    this.blocks = [1, 2, 3].map((i) =>
      this.child(`block${i}`, new NetworkBlock(rng, n, ch[i - 1], ch[i], i === 1 ? 1 : 2))
    );
    this.bn1 = this.child("bn1", new BatchNorm2d(ch[3]));
    this.fc = this.child("fc", new Linear(rng, ch[3], this.numClasses));
  }
  protected logits(x: Tensor): Tensor {
    let h = this.conv1.forward(x);
    for (const b of this.blocks) h = b.forward(h);
    return this.fc.forward(ops.mean(ops.relu(this.bn1.forward(h)), [2, 3]));
  }
}
