// Runs a CLI as the user would (a fresh `deno run -A` process) and returns its exit code and
// output, so tests see exactly what a user sees: the exit status and the one-line error.

export const ROOT = new URL("../../", import.meta.url).pathname;
/** The CIFAR-10 subset shipped in data/cifar10/. */
export const DATA_DIR = `${ROOT}data/cifar10/`;
export const FIXTURE = `${ROOT}tests/fixtures/smallcnn_subset.safetensors`;

export interface CliResult {
  code: number;
  stdout: string;
  /** stderr without the software Vulkan driver's XDG_RUNTIME_DIR notices. */
  stderr: string;
}

/** `deno run -A <script> ...args` from the repository root (script relative to it). */
export async function runCli(script: string, args: string[], cwd = ROOT): Promise<CliResult> {
  const xdg = Deno.env.get("XDG_RUNTIME_DIR") ?? await Deno.makeTempDir({ prefix: "xdg-" });
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}${script}`, ...args],
    cwd,
    env: { NO_COLOR: "1", XDG_RUNTIME_DIR: xdg },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  const stderr = dec.decode(out.stderr).split("\n")
    .filter((l) => !l.includes("XDG_RUNTIME_DIR")).join("\n");
  return { code: out.code, stdout: dec.decode(out.stdout), stderr };
}

/** The error a failed CLI printed: its last stderr line, checked to be the only one that is
 * not progress or a usage continuation (no stack trace). */
export function errorLine(r: CliResult): string {
  const lines = r.stderr.split("\n").filter((l) => l.trim() !== "");
  if (lines.some((l) => /^\s+at /.test(l))) throw new Error(`stack trace in stderr:\n${r.stderr}`);
  return lines.at(-1) ?? "";
}
