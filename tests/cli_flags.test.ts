// Flags and spec fields are validated before any GPU work or file write (issue 11, item 5).

import { assert } from "./helpers/check.ts";
import { DATA_DIR, errorLine, FIXTURE, runCli } from "./helpers/cli.ts";
import { enumFlag, epsFlag, fractionFlag, intFlag, numberFlag } from "../runtime/cli/flags.ts";
import { parseSpec } from "../dsl/spec.ts";
import { writeStubManifest } from "./helpers/tmp.ts";

const DATA = `${DATA_DIR}test_subset.bin`;

Deno.test("flags: typed parsers refuse fractions, junk, out-of-range and non-finite values", () => {
  assert.equal(intFlag("--limit", undefined, { min: 1 }), undefined);
  assert.equal(intFlag("--limit", "4", { min: 1 }), 4);
  assert.throws(
    () => intFlag("--limit", "2.5", { min: 1 }),
    /^Error: --limit: expected an integer >= 1, got "2\.5"$/,
  );
  for (const bad of ["", "0x10", "abc", "1e30", "Infinity", "0"]) {
    assert.throws(() => intFlag("--steps", bad, { min: 1 }), /--steps: expected an integer >= 1/);
  }
  assert.equal(numberFlag("--lr", "1e-3", { min: 0, minExclusive: true }), 1e-3);
  assert.throws(
    () => numberFlag("--lr", "0", { min: 0, minExclusive: true }),
    /--lr: expected a number > 0, got "0"/,
  );
  assert.throws(() => numberFlag("--tolerance", "NaN", { min: 0 }), /--tolerance: expected/);
  assert.equal(fractionFlag("--eps", "8/255", { min: 0, max: 1 }), 8 / 255);
  assert.throws(() => fractionFlag("--eps", "8/0", { min: 0 }), /--eps: expected a number >= 0/);
  assert.equal(epsFlag("0.5", "l2"), 0.5);
  assert.throws(() => epsFlag("-1", "linf"), /--eps: expected a number in \[0, 1\] for linf/);
  assert.throws(() => epsFlag("1e9", "linf"), /--eps: expected a number in \[0, 1\].*got "1e9"/);
  assert.throws(() => epsFlag("1e9", "l2"), /--eps: expected a number in \[0, 55\.42/);
  assert.equal(enumFlag("--adapter", "cpu", ["auto", "cpu", "gpu"]), "cpu");
  assert.throws(
    () => enumFlag("--adapter", "foo", ["auto", "cpu", "gpu"]),
    /--adapter: expected one of auto\|cpu\|gpu, got "foo"/,
  );
});

Deno.test("predict: --limit 2.5 and --adapter foo are refused in one line", async () => {
  const base = ["--arch", "smallcnn", "--weights", FIXTURE, "--data", DATA];
  const dir = await Deno.makeTempDir();
  try {
    const out = `${dir}/p.json`;
    let r = await runCli("runtime/cli/predict.ts", [...base, "--limit", "2.5", "--out", out]);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(errorLine(r), 'predict: --limit: expected an integer >= 1, got "2.5"');
    r = await runCli("runtime/cli/predict.ts", [...base, "--adapter", "foo", "--out", out]);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(errorLine(r), 'predict: --adapter: expected one of auto|cpu|gpu, got "foo"');
    assert.equal(await Deno.stat(out).then(() => true, () => false), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("attack: --eps -1, --eps 1e9 and --adapter foo fail before any file is written", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = `${dir}/r.json`;
    const base = [
      ...["--arch", "smallcnn", "--weights", FIXTURE, "--attack", "pgd", "--steps", "1"],
      ...["--limit", "4", "--data", DATA, "--out", out],
    ];
    for (
      const [flags, want] of [
        [["--eps=-1"], /^attack: --eps: expected a number in \[0, 1\] for linf.*got "-1"$/],
        [["--eps", "1e9"], /^attack: --eps: expected a number in \[0, 1\] for linf.*got "1e9"$/],
        [["--adapter", "foo"], /^attack: --adapter: expected one of auto\|cpu\|gpu, got "foo"$/],
        [["--threat", "classifier-only"], /^attack: --threat: only used with --pipeline; drop it$/],
      ] as const
    ) {
      const r = await runCli("runtime/cli/attack.ts", [...base, ...flags]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(errorLine(r), want);
      // No state file: the corrected rerun must not be blocked.
      assert.deepEqual([...Deno.readDirSync(dir)], [], `files written for ${flags}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("train: --adapter foo and ignored flags are refused before --out is made", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const base = ["--data", DATA, "--out", `${dir}/run`];
    let r = await runCli("runtime/cli/train.ts", [
      ...["--arch", "smallcnn", ...base, "--adapter", "foo"],
    ]);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(errorLine(r), 'train: --adapter: expected one of auto|cpu|gpu, got "foo"');
    r = await runCli("runtime/cli/train.ts", ["--arch", "smallcnn", ...base, "--width", "8"]);
    assert.equal(errorLine(r), "train: --width: only used with --arch deepfill; drop it");
    r = await runCli("runtime/cli/train.ts", ["--arch", "deepfill", ...base, "--optimizer", "sgd"]);
    assert.equal(errorLine(r), "train: --optimizer: only used to train a classifier; drop it");
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("spec: fractional epochs and radii beyond the image range name their field", () => {
  const base = { name: "t", classifier: { arch: "smallcnn" } };
  assert.throws(
    () => parseSpec({ ...base, pretraining: { epochs: 0.5 } }),
    /pretraining\.epochs: expected an integer >= 0, got 0\.5/,
  );
  assert.throws(
    () => parseSpec({ ...base, classifierTraining: { epochs: 0.5 } }),
    /classifierTraining\.epochs: expected an integer >= 0, got 0\.5/,
  );
  assert.throws(
    () => parseSpec({ ...base, trainAttack: { eps: 1e9 } }),
    /trainAttack\.eps: expected a number in \[0, 1\] for linf on 32x32 images, got 1000000000/,
  );
  assert.throws(
    () => parseSpec({ ...base, evaluation: { attacks: [{ attack: "pgd", norm: "l2", eps: 80 }] } }),
    /evaluation\.attacks\[0\]\.eps: expected a number in \[0, 55\.4256\] for l2/,
  );
  // Integers and the preset radii still pass.
  parseSpec({ ...base, pretraining: { epochs: 0 }, trainAttack: { eps: 8 / 255 } });
});

Deno.test("repro: a bad --tolerance is refused before the (long) rerun starts", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const manifest = `${dir}/manifest.json`;
    await writeStubManifest(manifest);
    const r = await runCli("runtime/cli/repro.ts", [
      ...[manifest, "--tolerance", "abc", "--out", `${dir}/rerun`],
    ]);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(errorLine(r), 'repro: --tolerance: expected a number >= 0, got "abc"');
    assert.doesNotMatch(r.stderr, /repro: deno run/, "the rerun was started");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("attack: each attack of a list keeps its own settings, recorded in the report", async () => {
  const { parseAttackList } = await import("../runtime/cli/attack_list.ts");
  const list = parseAttackList("pgd:steps=20:eot=4, autoattack:steps=100,stadv:bound=0.03", {
    steps: 10,
    eot: 2,
  });
  assert.deepEqual(list.map((a) => a.name), ["pgd", "autoattack", "stadv"]);
  assert.deepEqual([list[0].input.steps, list[0].input.eot], [20, 4]);
  assert.deepEqual([list[1].input.steps, list[1].input.eot], [100, 2]);
  assert.equal(list[2].input.bound, 0.03);
  assert.throws(() => parseAttackList("pgd:stpes=3", {}), /--attack pgd:stpes: unknown setting/);
  assert.throws(
    () => parseAttackList("pgd:steps=0", {}),
    /--attack pgd:steps: expected an integer >= 1/,
  );
  assert.throws(() => parseAttackList("pgd,pgd:steps=3", {}), /pgd is listed twice/);
  assert.throws(() => parseAttackList("pgd:eps=2", {}), /--eps: expected a number in \[0, 1\]/);
  const dir = await Deno.makeTempDir();
  try {
    const out = `${dir}/r.json`;
    const r = await runCli("runtime/cli/attack.ts", [
      ...["--arch", "smallcnn", "--weights", FIXTURE, "--steps", "3", "--limit", "2"],
      ...["--attack", "pgd:steps=1,fgsm,stadv:steps=2:tau=0.1", "--data", DATA, "--out", out],
      ...["--grid", "none"],
    ]);
    assert.equal(r.code, 0, r.stderr);
    const rep = JSON.parse(await Deno.readTextFile(out));
    assert.equal(rep.config.attack_params.pgd.steps, 1);
    assert.equal(rep.config.attack_params.fgsm.steps, 3);
    assert.equal(rep.config.attack_params.stadv.steps, 2);
    assert.deepEqual(rep.config.attack_params.stadv.stadv, {
      lr: 0.01,
      bound: 0.05,
      tau: 0.1,
      kappa: null,
    });
    const md = await Deno.readTextFile(`${dir}/r.md`);
    assert.match(md, /\| pgd \| .*steps 1;/);
    assert.match(md, /\| stadv \| .*stadv lr 0\.01, bound 0\.05, tau 0\.1, kappa none/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
