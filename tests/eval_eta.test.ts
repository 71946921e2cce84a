// The evaluation's time left (runtime/eval/eta.ts): jobs weighted by attack work and timed per
// cost group, and the progress line that shows it.
import assert from "node:assert/strict";
import { attackUnits, EtaModel } from "../runtime/eval/eta.ts";
import { Progress } from "../runtime/io/progress.ts";

Deno.test("attackUnits: gradient passes per attacked image", () => {
  assert.equal(attackUnits("pgd", { steps: 20, restarts: 1, eot: 8 }), 160);
  assert.equal(attackUnits("autoattack-rand", { steps: 20, restarts: 1, eot: 8 }), 320);
  assert.equal(attackUnits("stadv", { steps: 20, restarts: null, eot: 1 }), 20);
  assert.equal(attackUnits("square", { steps: 1, queries: 1000 }), 500);
});

Deno.test("EtaModel: each group's seconds per unit from its own batches; untimed groups flagged", () => {
  let t = 0;
  const m = new EtaModel([
    { group: "none.full-pipeline", images: 64, unitsPerImage: 20 },
    { group: "none.full-pipeline", images: 64, unitsPerImage: 40 },
    { group: "purifier.full-pipeline", images: 64, unitsPerImage: 160 },
  ], () => t);
  assert.deepEqual(m.estimate(), { seconds: 0, untimed: 2 });
  m.start(0);
  t = 32_000;
  m.progress(0, 32); // 32 s for 640 units: 0.05 s a unit
  // Job 0: 640 units left (32 s); job 1: 2,560 (128 s); job 2 not timed.
  assert.deepEqual(m.estimate(), { seconds: 160, untimed: 1 });
  t = 64_000;
  m.progress(0, 32);
  m.start(1);
  m.start(2);
  t = 64_000 + 51_200;
  m.progress(2, 32); // 51.2 s for 5,120 units: 0.01 s a unit
  assert.deepEqual(m.estimate(), { seconds: 128 + 51.2, untimed: 0 });
  // Images an earlier run did count as done, but their (zero) time is not a measurement.
  t = 200_000;
  m.progress(2, 32, true);
  assert.deepEqual(m.estimate(), { seconds: 128, untimed: 0 });
});

Deno.test("Progress with an eta estimator: a lower bound ends in +, nothing timed is ?", () => {
  let est = { seconds: 0, untimed: 2 };
  const p = new Progress(100, "eval", 0, {
    now: () => 1000,
    tty: false,
    write: () => {},
    eta: () => est,
  });
  assert.match(p.line(), /ETA \?$/);
  est = { seconds: 3725, untimed: 1 };
  assert.match(p.line(), /ETA 1:02:05\+$/);
  est = { seconds: 65, untimed: 0 };
  assert.match(p.line(), /ETA 1:05$/);
});
