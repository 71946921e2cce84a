import { assert, gpu } from "./helpers/check.ts";
import { createModel, widthsInWeights } from "../runtime/models/mod.ts";
import { readSafetensors, writeSafetensors } from "../runtime/io/safetensors.ts";
import { loadClassifier } from "../runtime/eval/model.ts";
import { Tensor, tidyAsync } from "../runtime/tensor.ts";
import * as ops from "../runtime/ops/mod.ts";
import { backward } from "../runtime/autograd.ts";

await gpu();

Deno.test("resnet18: PyTorch state-dict names and 11,173,962 parameters", () => {
  const m = createModel("resnet18");
  try {
    assert.equal(m.numParameters(), 11_173_962);
    const keys = [...m.stateDict().keys()];
    for (
      const k of [
        "conv1.weight",
        "bn1.running_mean",
        "bn1.running_var",
        "layer1.0.conv1.weight",
        "layer1.1.bn2.bias",
        "layer2.0.shortcut.0.weight",
        "layer2.0.shortcut.1.running_var",
        "layer4.1.conv2.weight",
        "linear.weight",
        "linear.bias",
      ]
    ) {
      assert.ok(keys.includes(k), `missing ${k}`);
    }
    assert.ok(
      !keys.some((k) => k.startsWith("layer1.0.shortcut")),
      "layer1 has identity shortcuts",
    );
    assert.equal(keys.length, 62 + 40, "62 parameters + 40 running statistics (20 batch norms)");
  } finally {
    m.dispose();
  }
});

Deno.test("wrn28_10: RobustBench names and 36,479,194 parameters", () => {
  const m = createModel("wrn28_10");
  try {
    assert.equal(m.numParameters(), 36_479_194);
    const keys = [...m.stateDict().keys()];
    for (
      const k of [
        "conv1.weight",
        "block1.layer.0.bn1.weight",
        "block1.layer.0.convShortcut.weight",
        "block2.layer.3.conv2.weight",
        "block3.layer.0.convShortcut.weight",
        "bn1.running_var",
        "fc.weight",
        "fc.bias",
      ]
    ) {
      assert.ok(keys.includes(k), `missing ${k}`);
    }
    assert.ok(!keys.includes("block1.layer.1.convShortcut.weight"));
  } finally {
    m.dispose();
  }
});

Deno.test("smallcnn trains: loss falls on a fixed batch; eval mode is deterministic", async () => {
  const m = createModel("smallcnn", { seed: 3, widths: [8, 8, 16, 16] });
  try {
    await tidyAsync(async () => {
      const n = 8;
      const x = Tensor.fromData(
        Float32Array.from({ length: n * 3 * 32 * 32 }, (_, i) => (Math.sin(i * 0.37) + 1) / 2),
        [n, 3, 32, 32],
      );
      const y = Tensor.fromData(Array.from({ length: n }, (_, i) => i % 10), [n]);
      const losses: number[] = [];
      for (let step = 0; step < 20; step++) {
        const loss = ops.mean(ce(m.forward(x), y));
        losses.push(await loss.item());
        backward(loss);
        for (const p of m.parameters()) {
          const upd = ops.sub(p, ops.scale(p.grad!, 0.1));
          ops.assign(p, upd);
          p.grad!.dispose();
          p.grad = null;
        }
      }
      assert.ok(
        losses.at(-1)! < losses[0] * 0.7,
        `loss did not fall: ${losses.map((l) => l.toFixed(3))}`,
      );
      m.eval();
      const a = await m.forward(x).data(), b = await m.forward(x).data();
      assert.deepEqual(a, b);
    });
  } finally {
    m.dispose();
  }
});

function ce(z: Tensor, y: Tensor): Tensor {
  const k = z.shape[1];
  const iota = Tensor.fromData(Array.from({ length: k }, (_, i) => i), [1, k]);
  const onehot = ops.eq(iota, ops.reshape(y, [y.shape[0], 1]));
  const m = ops.max(ops.detach(z), 1, true);
  const lse = ops.add(ops.log(ops.sum(ops.exp(ops.sub(z, m)), 1)), ops.reshape(m, [z.shape[0]]));
  return ops.sub(lse, ops.sum(ops.mul(z, onehot), 1));
}

Deno.test("a widened smallcnn's weights load by name alone: widths read off its convs", async () => {
  const m = createModel("smallcnn", { seed: 6, widths: [12, 8, 24, 20] });
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/wide.safetensors`;
    await writeSafetensors(path, m.stateDict(), { arch: "smallcnn" });
    const state = await readSafetensors(path);
    assert.deepEqual(widthsInWeights("smallcnn", state), [12, 8, 24, 20]);
    assert.equal(widthsInWeights("resnet18", state), undefined);
    const target = await loadClassifier("smallcnn", path);
    m.eval();
    await tidyAsync(async () => {
      const x = Tensor.fromData(
        Float32Array.from({ length: 2 * 3 * 32 * 32 }, (_, i) => (Math.cos(i * 0.11) + 1) / 2),
        [2, 3, 32, 32],
      );
      assert.deepEqual(await target.logits(x).data(), await m.forward(x).data());
    });
    for (const t of state.values()) t.dispose();
  } finally {
    m.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});
