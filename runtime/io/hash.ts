// Content hashes: SHA-256 for artifacts and specs (stage cache keys, manifests), MD5 only to
// verify the official CIFAR archives, whose published checksums are MD5.

import { createHash } from "node:crypto";

function hex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

function toBytes(data: Uint8Array | string): Uint8Array {
  return typeof data === "string" ? new TextEncoder().encode(data) : data;
}

/** SHA-256 of bytes (strings are hashed as UTF-8), lower-case hex. */
export async function sha256Hex(data: Uint8Array | string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", toBytes(data) as Uint8Array<ArrayBuffer>);
  return hex(new Uint8Array(d));
}

/** MD5 of bytes (strings are hashed as UTF-8), lower-case hex. */
export function md5Hex(data: Uint8Array | string): string {
  return createHash("md5").update(toBytes(data)).digest("hex");
}

/** Hash of a file's content, read in chunks (archives can be hundreds of MB). */
export async function hashFile(
  path: string,
  algorithm: "sha256" | "md5" = "sha256",
): Promise<string> {
  const h = createHash(algorithm);
  let f: Deno.FsFile;
  try {
    f = await Deno.open(path, { read: true });
  } catch (e) {
    throw new Error(`hashFile: cannot open ${path}: ${e instanceof Error ? e.message : e}`);
  }
  try {
    const buf = new Uint8Array(1 << 20);
    for (;;) {
      const n = await f.read(buf);
      if (n === null) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    f.close();
  }
  return h.digest("hex");
}

/** JSON with object keys sorted at every level, so equal values give equal strings. Follows
 * JSON.stringify otherwise (undefined members dropped, toJSON honoured); Map, Set and BigInt
 * throw, since JSON would silently encode them as {} and two different values would collide. */
export function stableStringify(value: unknown): string {
  return encode(value, "$") ?? "null";
}

function encode(v: unknown, path: string): string | undefined {
  if (
    v !== null && typeof v === "object" && typeof (v as { toJSON?: unknown }).toJSON === "function"
  ) {
    v = (v as { toJSON: () => unknown }).toJSON();
  }
  if (v === undefined || typeof v === "function" || typeof v === "symbol") return undefined;
  if (typeof v === "bigint") throw new Error(`stableStringify: BigInt at ${path}`);
  if (v === null || typeof v !== "object") return JSON.stringify(v);
  if (v instanceof Map || v instanceof Set) {
    throw new Error(`stableStringify: ${v.constructor.name} at ${path}; convert it to an array`);
  }
  if (Array.isArray(v)) {
    return `[${v.map((x, i) => encode(x, `${path}[${i}]`) ?? "null").join(",")}]`;
  }
  const o = v as Record<string, unknown>;
  const parts: string[] = [];
  for (const k of Object.keys(o).sort()) {
    const s = encode(o[k], `${path}.${k}`);
    if (s !== undefined) parts.push(`${JSON.stringify(k)}:${s}`);
  }
  return `{${parts.join(",")}}`;
}

/** SHA-256 of `stableStringify(value)`: a key for cached pipeline stages. */
export function hashJson(value: unknown): Promise<string> {
  return sha256Hex(stableStringify(value));
}
