import { assert } from "./helpers/check.ts";
import {
  compareMetrics,
  crossAdapterTolerance,
  rerunArgs,
  rerunEnv,
} from "../runtime/cli/repro.ts";

Deno.test("repro: metric comparison is exact at tolerance 0, lists missing metrics", () => {
  const a = {
    "none/full-pipeline/clean_accuracy": 0.5,
    "atop/full-pipeline/pgd-linf": 0.25,
    gone: 1,
  };
  const b = {
    "none/full-pipeline/clean_accuracy": 0.5,
    "atop/full-pipeline/pgd-linf": 0.25000001,
    extra: 2,
  };
  const d = compareMetrics(a, b, 0);
  assert.deepEqual(d.map((x) => x.metric), ["atop/full-pipeline/pgd-linf", "extra", "gone"]);
  assert.deepEqual(compareMetrics(a, b, 1e-3).map((x) => x.metric), ["extra", "gone"]);
  assert.deepEqual(d.find((x) => x.metric === "gone"), {
    metric: "gone",
    recorded: 1,
    rerun: null,
  });
});

Deno.test("repro: the recorded command is rerun into a fresh --out", () => {
  assert.deepEqual(rerunArgs(["--preset", "quick", "--out", "old", "--seed", "3"], "/tmp/new"), [
    "--preset",
    "quick",
    "--seed",
    "3",
    "--out",
    "/tmp/new",
  ]);
  assert.deepEqual(rerunArgs(["--out=old"], "n"), ["--out", "n"]);
});

Deno.test("repro: across adapters the tolerance is 5 points or two examples of a small set", () => {
  assert.equal(crossAdapterTolerance(undefined), 0.05);
  assert.equal(crossAdapterTolerance(1000), 0.05);
  assert.equal(crossAdapterTolerance(16), 0.125);
});

Deno.test("repro: the committed ci_tiny manifest reruns to the same metrics and weights", async () => {
  const out = await Deno.makeTempDir({ prefix: "atop-repro-test-" });
  const p = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "runtime/cli/repro.ts", "pipelines/ci_tiny.manifest.json", "--out", out],
    stdout: "piped",
    stderr: "piped",
  });
  const r = await p.output();
  const text = new TextDecoder().decode(r.stdout);
  try {
    assert.equal(
      r.code,
      0,
      `repro failed:\n${text}\n${new TextDecoder().decode(r.stderr).slice(-2000)}`,
    );
    assert.match(text, /repro: all 29 metrics match/);
    // The per-defense summary ANDs, by example index, every attack report of every threat model.
    const evalDir = [...Deno.readDirSync(out)].find((e) => e.name.startsWith("eval-"))!.name;
    const pr = JSON.parse(await Deno.readTextFile(`${out}/${evalDir}/report.json`));
    assert.equal(pr.summary.length, new Set(pr.rows.map((r: any) => r.defense)).size);
    for (const s of pr.summary) {
      const rows = pr.rows.filter((r: any) => r.defense === s.defense);
      const robust = new Map<number, boolean>();
      for (const r of rows) {
        assert.ok(s.worst_case_robust_accuracy <= r.worst_case_robust_accuracy);
        for (const a of r.attacks) {
          const rep = JSON.parse(await Deno.readTextFile(a.report));
          for (const e of rep.examples) {
            robust.set(e.index, (robust.get(e.index) ?? true) && e.robust);
          }
        }
      }
      const share = [...robust.values()].filter(Boolean).length / pr.n;
      assert.equal(s.worst_case_robust_accuracy, share, s.defense);
    }
    assert.match(
      await Deno.readTextFile(`${out}/${evalDir}/report.md`),
      /## Worst case per defense/,
    );
    // The finished run is also attackable from the CLI: `--pipeline FILE --run DIR`.
    for (const [defense, threat] of [["atop", "full-pipeline"], ["purifier", "classifier-only"]]) {
      const json = `${out}/attack-${defense}.json`;
      const a = await new Deno.Command(Deno.execPath(), {
        args: [
          ...["run", "-A", "runtime/cli/attack.ts", "--pipeline", "pipelines/ci_tiny.ts"],
          ...["--run", out, "--defense", defense, "--threat", threat, "--attack", "pgd"],
          ...["--steps", "1", "--eot", "2", "--limit", "6", "--grid", "none", "--out", json],
          ...["--data", "data/cifar10/test_subset.bin"],
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(a.code, 0, new TextDecoder().decode(a.stderr).slice(-2000));
      const rep = JSON.parse(await Deno.readTextFile(json));
      assert.equal(rep.config.pipeline, "pipelines/ci_tiny.ts");
      assert.equal(rep.config.defense, defense);
      assert.equal(rep.config.threat_model, threat);
      assert.equal(rep.examples.length, 6);
      assert.ok(rep.robust_accuracy <= rep.clean_accuracy);
    }
  } finally {
    await Deno.remove(out, { recursive: true }).catch(() => {});
  }
});

Deno.test("repro: the rerun uses the recorded conv operand storage, float32 when none is recorded", () => {
  assert.deepEqual(rerunEnv({ conv_storage: "f16" }), { ATOP_F16: "1" });
  assert.deepEqual(rerunEnv({ conv_storage: "f32" }), { ATOP_F16: "0" });
  assert.deepEqual(rerunEnv({}), { ATOP_F16: "0" });
});
