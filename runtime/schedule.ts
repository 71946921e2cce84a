// Learning-rate schedules as pure functions of the step index (0-based), with the values of
// the matching torch.optim.lr_scheduler classes: set `opt.lr = schedule(step)` before step().

export type Schedule = (step: number) => number;

function checkStep(what: string, step: number): void {
  if (!Number.isInteger(step) || step < 0) {
    throw new Error(`${what}: step must be a non-negative integer, got ${step}`);
  }
}

function checkPositiveInt(what: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) {
    throw new Error(`${what} must be a positive integer, got ${v}`);
  }
}

function checkRate(what: string, v: number): void {
  if (!(Number.isFinite(v) && v >= 0)) {
    throw new Error(`${what} must be a finite number >= 0, got ${v}`);
  }
}

/** StepLR: base * gamma^floor(step / stepSize). */
export function stepLR(base: number, stepSize: number, gamma = 0.1): Schedule {
  checkRate("stepLR: base", base);
  checkPositiveInt("stepLR: stepSize", stepSize);
  checkRate("stepLR: gamma", gamma);
  return (step) => {
    checkStep("stepLR", step);
    return base * gamma ** Math.floor(step / stepSize);
  };
}

/** CosineAnnealingLR (closed form): minLr + (base - minLr) (1 + cos(pi step / total)) / 2.
 * Like PyTorch it is periodic: past `total` the rate rises again (stop at `total` to hold
 * minLr). */
export function cosineLR(base: number, total: number, minLr = 0): Schedule {
  checkRate("cosineLR: base", base);
  checkPositiveInt("cosineLR: total", total);
  checkRate("cosineLR: minLr", minLr);
  return (step) => {
    checkStep("cosineLR", step);
    return minLr + (base - minLr) * (1 + Math.cos(Math.PI * step / total)) / 2;
  };
}

/** Linear warmup for `warmupSteps` steps, then `schedule` restarted from its step 0: PyTorch's
 * SequentialLR([LinearLR(start_factor=1/W, total_iters=W), schedule], milestones=[W]), i.e.
 * schedule(0) * (1/W + (1 - 1/W) step / W) for step < W, and schedule(step - W) after. */
export function warmup(schedule: Schedule, warmupSteps: number): Schedule {
  if (typeof schedule !== "function") throw new Error("warmup: schedule must be a function");
  if (!Number.isInteger(warmupSteps) || warmupSteps < 0) {
    throw new Error(`warmup: warmupSteps must be a non-negative integer, got ${warmupSteps}`);
  }
  const w = warmupSteps;
  return (step) => {
    checkStep("warmup", step);
    if (step >= w) return schedule(step - w);
    const start = 1 / w;
    return schedule(0) * (start + (1 - start) * step / w);
  };
}
