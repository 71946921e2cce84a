// ResNet-18 for CIFAR (3x3 stem, no max-pool), with the state-dict names of the widely used
// PyTorch CIFAR implementation: conv1, bn1, layer{1..4}.{0,1}.{conv1,bn1,conv2,bn2},
// layer{2..4}.0.shortcut.{0,1}, linear. 11,173,962 parameters for 10 classes.

import type { Tensor } from "../tensor.ts";
import * as ops from "../ops/mod.ts";
import { BatchNorm2d, Conv2d, InitRng, Module, Sequential } from "../nn/mod.ts";
import { Linear } from "../nn/mod.ts";
import { Classifier, type ClassifierOptions } from "./classifier.ts";

class BasicBlock extends Module {
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly shortcut: Sequential | null;
  constructor(rng: InitRng, cin: number, cout: number, stride: number) {
    super();
    this.conv1 = this.child(
      "conv1",
      new Conv2d(rng, cin, cout, 3, { stride, padding: 1, bias: false }),
    );
    this.bn1 = this.child("bn1", new BatchNorm2d(cout));
    this.conv2 = this.child("conv2", new Conv2d(rng, cout, cout, 3, { padding: 1, bias: false }));
    this.bn2 = this.child("bn2", new BatchNorm2d(cout));
    this.shortcut = stride !== 1 || cin !== cout
      ? this.child(
        "shortcut",
        new Sequential(
          new Conv2d(rng, cin, cout, 1, { stride, bias: false }),
          new BatchNorm2d(cout),
        ),
      )
      : null;
  }
  forward(x: Tensor): Tensor {
    const h = ops.relu(this.bn1.forward(this.conv1.forward(x)));
    const y = this.bn2.forward(this.conv2.forward(h));
    return ops.relu(ops.add(y, this.shortcut ? this.shortcut.forward(x) : x));
  }
}

export class ResNet18 extends Classifier {
  readonly arch = "resnet18";
  readonly stemChannels = 64;
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly layers: Sequential[] = [];
  readonly linear: Linear;
  constructor(o: ClassifierOptions = {}) {
    super(o);
    const rng = new InitRng(o.seed ?? 0);
    this.conv1 = this.child("conv1", new Conv2d(rng, 3, 64, 3, { padding: 1, bias: false }));
    this.bn1 = this.child("bn1", new BatchNorm2d(64));
    let cin = 64;
    [64, 128, 256, 512].forEach((c, i) => {
      const stride = i === 0 ? 1 : 2;
      this.layers.push(
        this.child(
          `layer${i + 1}`,
          new Sequential(new BasicBlock(rng, cin, c, stride), new BasicBlock(rng, c, c, 1)),
        ),
      );
      cin = c;
    });
    this.linear = this.child("linear", new Linear(rng, 512, this.numClasses));
  }
  protected logits(x: Tensor): Tensor {
    let h = ops.relu(this.bn1.forward(this.conv1.forward(x)));
    for (const l of this.layers) h = l.forward(h);
    return this.linear.forward(ops.mean(h, [2, 3]));
  }
}
