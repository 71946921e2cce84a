// The dataset a command reads must have as many classes as the model it runs: CIFAR-100
// labels on a 10-class model give 0% accuracy with no other sign, so the mismatch is refused
// before any GPU work, naming both sides.

import { CIFAR, type CifarName, IMAGE_BYTES } from "../data/cifar.ts";

export interface DataSide {
  flag: string;
  path: string;
  dataset: CifarName;
  classes: number;
}

/** `what` names the model, e.g. "--weights W (smallcnn)" or "--pipeline P". */
export function refuseClassMismatch(data: DataSide, what: string, modelClasses: number): void {
  if (data.classes === modelClasses) return;
  const L = CIFAR[data.dataset];
  const fits = Object.values(CIFAR).find((c) => c.classes === modelClasses);
  throw new Error(
    `${data.flag} ${data.path} is ${L.title} (${L.labelBytes + IMAGE_BYTES}-byte records, ` +
      `${data.classes} classes) but ${what} has ${modelClasses} classes: give ` +
      `${fits ? `${fits.title} data` : `data with ${modelClasses} classes`} or a model ` +
      `trained on ${L.title} (--dataset cifar10|cifar100 sets the format if it was misread)`,
  );
}
