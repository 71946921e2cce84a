// A minimal tar reader and writer (POSIX ustar, plus GNU 'L' long names and pax 'path'
// records on read), and gzip via the web streams. Enough for the CIFAR archives and tests.

const BLOCK = 512;

export type TarEntryType = "file" | "directory" | "symlink" | "other";

export interface TarEntry {
  name: string;
  type: TarEntryType;
  /** The raw typeflag character ("0", "5", ...). */
  typeflag: string;
  mode: number;
  mtime: number;
  size: number;
  linkname: string;
  /** File content (empty for anything but regular files). */
  data: Uint8Array;
}

const dec = new TextDecoder();
const enc = new TextEncoder();

function str(h: Uint8Array, off: number, len: number): string {
  const f = h.subarray(off, off + len);
  const end = f.indexOf(0);
  return dec.decode(end < 0 ? f : f.subarray(0, end));
}

/** A numeric header field: octal text, or GNU base-256 when the top bit is set. */
function num(h: Uint8Array, off: number, len: number, what: string, at: number): number {
  const f = h.subarray(off, off + len);
  if (f[0] & 0x80) {
    let v = f[0] & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + f[i];
    return v;
  }
  const s = str(h, off, len).trim();
  if (s === "") return 0;
  if (!/^[0-7]+$/.test(s)) {
    throw new Error(
      `tar: header at byte ${at}: ${what} field "${s}" is not octal (corrupt archive)`,
    );
  }
  return parseInt(s, 8);
}

function checksumOk(h: Uint8Array, stored: number): boolean {
  let unsigned = 0, signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : h[i];
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  return stored === unsigned || stored === signed; // old tars summed signed chars
}

/** pax extended header records: "<len> <key>=<value>\n" repeated. */
function parsePax(data: Uint8Array): Record<string, string> {
  const out: Record<string, string> = {};
  let o = 0;
  while (o < data.length) {
    const sp = data.indexOf(0x20, o);
    if (sp < 0) break;
    const len = parseInt(dec.decode(data.subarray(o, sp)), 10);
    if (!(len > 0) || o + len > data.length) throw new Error(`tar: malformed pax record`);
    const rec = dec.decode(data.subarray(sp + 1, o + len - 1));
    const eq = rec.indexOf("=");
    if (eq > 0) out[rec.slice(0, eq)] = rec.slice(eq + 1);
    o += len;
  }
  return out;
}

function kind(flag: string): TarEntryType {
  if (flag === "0" || flag === "\0" || flag === "" || flag === "7") return "file";
  if (flag === "5") return "directory";
  if (flag === "2") return "symlink";
  return "other";
}

/** Lists the entries of an (uncompressed) tar archive. */
export function readTar(bytes: Uint8Array): TarEntry[] {
  const out: TarEntry[] = [];
  let longName: string | null = null;
  let paxPath: string | null = null;
  let o = 0;
  while (o + BLOCK <= bytes.length) {
    const at = o;
    const h = bytes.subarray(o, o + BLOCK);
    if (h.every((b) => b === 0)) break; // end-of-archive marker
    const stored = num(h, 148, 8, "checksum", o);
    if (!checksumOk(h, stored)) {
      throw new Error(`tar: header at byte ${o} has a bad checksum (corrupt or not a tar archive)`);
    }
    const size = num(h, 124, 12, "size", o);
    const typeflag = String.fromCharCode(h[156]).replace("\0", "0");
    const start = o + BLOCK;
    const end = start + size;
    let name = str(h, 0, 100);
    const magic = str(h, 257, 6);
    if (magic.startsWith("ustar")) {
      const prefix = str(h, 345, 155);
      if (prefix && magic === "ustar") name = `${prefix}/${name}`;
    }
    if (end > bytes.length) {
      throw new Error(
        `tar: entry "${
          longName ?? paxPath ?? name
        }" needs ${size} bytes at byte ${start} but the ` +
          `archive ends at ${bytes.length} (truncated)`,
      );
    }
    const data = bytes.subarray(start, end);
    o = start + Math.ceil(size / BLOCK) * BLOCK;
    if (typeflag === "L") {
      longName = str(data, 0, data.length);
      continue;
    }
    if (typeflag === "x") {
      paxPath = parsePax(data).path ?? paxPath;
      continue;
    }
    if (typeflag === "g") continue; // global pax header: nothing we use
    const t = kind(typeflag);
    out.push({
      name: longName ?? paxPath ?? name,
      type: t,
      typeflag,
      mode: num(h, 100, 8, "mode", at),
      mtime: num(h, 136, 12, "mtime", at),
      size,
      linkname: str(h, 157, 100),
      data: t === "file" ? data : new Uint8Array(0),
    });
    longName = paxPath = null;
  }
  return out;
}

export interface TarInput {
  name: string;
  data?: Uint8Array;
  type?: "file" | "directory";
  mode?: number;
  mtime?: number;
}

function header(name: string, size: number, flag: string, mode: number, mtime: number) {
  const h = new Uint8Array(BLOCK);
  const put = (s: string, off: number, len: number) => {
    const b = enc.encode(s);
    if (b.length > len) throw new Error(`tar: "${s}" does not fit in ${len} bytes`);
    h.set(b, off);
  };
  const oct = (v: number, off: number, len: number) =>
    put(v.toString(8).padStart(len - 1, "0"), off, len - 1);
  put(name, 0, 100);
  oct(mode, 100, 8);
  oct(0, 108, 8);
  oct(0, 116, 8);
  oct(size, 124, 12);
  oct(mtime, 136, 12);
  h[156] = flag.charCodeAt(0);
  put("ustar", 257, 6);
  put("00", 263, 2);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  put(sum.toString(8).padStart(6, "0") + "\0 ", 148, 8);
  return h;
}

/** A ustar archive of `entries`; names over 100 bytes get a GNU 'L' (or pax 'x') record. */
export function writeTar(entries: TarInput[], o: { longNames?: "gnu" | "pax" } = {}): Uint8Array {
  const blocks: Uint8Array[] = [];
  const pushData = (d: Uint8Array) => {
    blocks.push(d);
    const rem = d.length % BLOCK;
    if (rem) blocks.push(new Uint8Array(BLOCK - rem));
  };
  for (const e of entries) {
    const isDir = e.type === "directory";
    const data = isDir ? new Uint8Array(0) : e.data ?? new Uint8Array(0);
    const mode = e.mode ?? (isDir ? 0o755 : 0o644), mtime = e.mtime ?? 0;
    let name = e.name;
    if (enc.encode(name).length > 100) {
      if (o.longNames === "pax") {
        const rec = (len: number) => `${len} path=${name}\n`;
        let len = enc.encode(rec(0)).length;
        while (enc.encode(rec(len)).length !== len) len = enc.encode(rec(len)).length;
        const body = enc.encode(rec(len));
        blocks.push(header("PaxHeader", body.length, "x", 0o644, mtime));
        pushData(body);
      } else {
        const body = enc.encode(name + "\0");
        blocks.push(header("././@LongLink", body.length, "L", 0o644, mtime));
        pushData(body);
      }
      name = new TextDecoder().decode(enc.encode(name).subarray(0, 100)).replace(/\uFFFD+$/, "");
    }
    blocks.push(header(name, data.length, isDir ? "5" : "0", mode, mtime));
    pushData(data);
  }
  blocks.push(new Uint8Array(2 * BLOCK));
  const out = new Uint8Array(blocks.reduce((a, b) => a + b.length, 0));
  let at = 0;
  for (const b of blocks) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}

async function pipe(bytes: Uint8Array, t: CompressionStream | DecompressionStream) {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(t);
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Decompresses a gzip file; a corrupt or truncated stream is an error. */
export async function gunzip(bytes: Uint8Array, what = "archive"): Promise<Uint8Array> {
  if (bytes[0] !== 0x1f || bytes[1] !== 0x8b) throw new Error(`${what}: not a gzip file`);
  try {
    return await pipe(bytes, new DecompressionStream("gzip"));
  } catch (e) {
    throw new Error(`${what}: gzip data is corrupt (${e instanceof Error ? e.message : e})`);
  }
}

export function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  return pipe(bytes, new CompressionStream("gzip"));
}

/** An archive member name as a safe relative path (no absolute paths, no ".."). */
export function safeRelativePath(name: string): string {
  const parts = name.split("/").filter((p) => p !== "" && p !== ".");
  if (name.startsWith("/") || parts.some((p) => p === "..") || parts.length === 0) {
    throw new Error(
      `tar: refusing to extract "${name}" (absolute or escapes the target directory)`,
    );
  }
  return parts.join("/");
}
