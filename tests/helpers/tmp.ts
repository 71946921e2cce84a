// Temporary directories for tests: made fresh, removed afterwards whatever happens.

export async function withTmp(
  prefix: string,
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A manifest that names a pipeline file that does not exist: for CLI checks that must fail
 * before any rerun starts. */
export async function writeStubManifest(path: string): Promise<void> {
  await Deno.writeTextFile(
    path,
    JSON.stringify({
      format: "atop-manifest/1",
      pipeline_file: "pipelines/does_not_exist.ts",
      args: [],
      adapter: null,
      metrics: {},
    }),
  );
}
