// The model zoo: classifiers by architecture name, the purifier and its critic.

import { SmallCnn, type SmallCnnOptions } from "./smallcnn.ts";
import { ResNet18 } from "./resnet18.ts";
import { WideResNet } from "./wrn.ts";

export { Classifier, type ClassifierOptions } from "./classifier.ts";
export { SmallCnn } from "./smallcnn.ts";
export { ResNet18 } from "./resnet18.ts";
export { WideResNet } from "./wrn.ts";

export const ARCHS = ["smallcnn", "resnet18", "wrn28_10"] as const;
export type Arch = typeof ARCHS[number];

/** Each architecture's last layer: its weight is [classes, features]. */
const HEAD_WEIGHT: Record<Arch, string> = {
  smallcnn: "fc.weight",
  resnet18: "linear.weight",
  wrn28_10: "fc.weight",
};

/** The number of classes a state dict of `arch` was trained for (null when its head is
 * missing or not a matrix: loading then reports what is wrong). Reads shapes only, so it
 * works on CPU tensors before the engine starts. */
export function classesInWeights(
  arch: Arch,
  state: Map<string, { shape: readonly number[] }>,
): number | null {
  const head = state.get(HEAD_WEIGHT[arch]);
  return head && head.shape.length === 2 ? head.shape[0] : null;
}

/** The small CNN's stage widths as a state dict holds them (its convs' output channels), so
 * that weights of a widened small CNN load by architecture name alone; undefined for other
 * architectures or when a conv weight is missing (loading then reports what is wrong). */
export function widthsInWeights(
  arch: Arch,
  state: Map<string, { shape: readonly number[] }>,
): [number, number, number, number] | undefined {
  if (arch !== "smallcnn") return undefined;
  const w = [1, 2, 3, 4].map((i) => state.get(`conv${i}.weight`)?.shape);
  if (!w.every((s) => s && s.length === 4)) return undefined;
  return w.map((s) => s![0]) as [number, number, number, number];
}

/** A classifier by name; `widths` applies to the small CNN only. */
export function createModel(arch: string, o: SmallCnnOptions = {}) {
  if (o.widths && arch !== "smallcnn") {
    throw new Error(`widths: only the smallcnn has stage widths, got them for "${arch}"`);
  }
  switch (arch) {
    case "smallcnn":
      return new SmallCnn(o);
    case "resnet18":
      return new ResNet18(o);
    case "wrn28_10":
      return new WideResNet({ ...o, depth: 28, widen: 10 });
    default:
      throw new Error(`unknown --arch "${arch}": expected one of ${ARCHS.join(", ")}`);
  }
}
export { Purifier, PURIFIER_ARCH_VERSION, type PurifierOptions } from "./purifier.ts";
export { PatchDiscriminator } from "./discriminator.ts";
