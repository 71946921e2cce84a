// A minimal PNG encoder (8-bit RGB or RGBA, no interlace, zlib via CompressionStream) and an
// image grid: float images in [0,1] laid out in rows and columns with a small gap.

let crcTable: Uint32Array | null = null;

/** CRC-32 (the PNG/zlib polynomial 0xedb88320) of `bytes`. */
export function crc32(bytes: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (const b of bytes) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

async function zlibDeflate(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new CompressionStream("deflate"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  dv.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

export const PNG_SIGNATURE = new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]);

/** Encodes row-major 8-bit pixels as a PNG: RGB when `pixels` has 3 bytes per pixel, RGBA
 * when it has 4. */
export async function encodePng(
  pixels: Uint8Array,
  width: number,
  height: number,
): Promise<Uint8Array> {
  if (!(Number.isInteger(width) && width >= 1 && Number.isInteger(height) && height >= 1)) {
    throw new Error(`encodePng: width and height must be integers >= 1, got ${width}x${height}`);
  }
  const px = width * height;
  const channels = pixels.length === 3 * px ? 3 : pixels.length === 4 * px ? 4 : 0;
  if (!channels) {
    throw new Error(
      `encodePng: ${pixels.length} bytes for ${width}x${height}; need ${3 * px} (RGB) or ` +
        `${4 * px} (RGBA)`,
    );
  }
  const stride = width * channels;
  const raw = new Uint8Array(height * (1 + stride));
  for (let y = 0; y < height; y++) {
    raw[y * (1 + stride)] = 0; // filter type 0 (none)
    raw.set(pixels.subarray(y * stride, (y + 1) * stride), y * (1 + stride) + 1);
  }
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, width);
  dv.setUint32(4, height);
  // bit depth 8, colour type 2 (RGB) or 6 (RGBA), deflate, adaptive filtering, no interlace
  ihdr.set([8, channels === 3 ? 2 : 6, 0, 0, 0], 8);
  const parts = [
    PNG_SIGNATURE,
    chunk("IHDR", ihdr),
    chunk("IDAT", await zlibDeflate(raw)),
    chunk("IEND", new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** `encodePng` for RGB pixels (the name runtime/eval used). */
export function encodePngRgb(rgb: Uint8Array, width: number, height: number) {
  if (rgb.length !== width * height * 3) {
    return Promise.reject(
      new Error(`encodePngRgb: ${rgb.length} bytes for ${width}x${height} RGB`),
    );
  }
  return encodePng(rgb, width, height);
}

export interface GridOptions {
  /** Pixels between cells (default 2). */
  gap?: number;
  /** Gap and empty-cell colour, 0..255 grey (default 255, white). */
  background?: number;
  /** Nearest-neighbour upscaling of the whole grid (default 1): 32x32 CIFAR cells are too
   * small to judge inpainting by eye. */
  scale?: number;
}

/** Nearest-neighbour upscaling of RGB bytes by an integer factor. */
export function upscaleRgb(
  rgb: Uint8Array,
  width: number,
  height: number,
  f: number,
): { rgb: Uint8Array; width: number; height: number } {
  if (!Number.isInteger(f) || f < 1) throw new Error(`imageGrid: scale must be an integer >= 1`);
  if (f === 1) return { rgb, width, height };
  const W = width * f, H = height * f;
  const out = new Uint8Array(W * H * 3);
  for (let y = 0; y < H; y++) {
    const sy = Math.floor(y / f);
    for (let x = 0; x < W; x++) {
      const src = (sy * width + Math.floor(x / f)) * 3, dst = (y * W + x) * 3;
      out[dst] = rgb[src];
      out[dst + 1] = rgb[src + 1];
      out[dst + 2] = rgb[src + 2];
    }
  }
  return { rgb: out, width: W, height: H };
}

/** RGB bytes of a grid: row r shows the images of `rows[r]` left to right. Each row array is
 * [k, C, H, W] floats in [0,1] (clamped), C = 1 (grey) or 3; rows may differ in length. */
export function gridPixels(
  rows: Float32Array[],
  shape: readonly [number, number, number],
  o: GridOptions = {},
): { rgb: Uint8Array; width: number; height: number } {
  const [c, h, w] = shape;
  const gap = o.gap ?? 2;
  if (c !== 1 && c !== 3) throw new Error(`imageGrid: need 1 or 3 channels, got ${c}`);
  if (rows.length === 0) throw new Error(`imageGrid: no rows`);
  const d = c * h * w;
  const counts = rows.map((r, i) => {
    if (r.length % d !== 0) {
      throw new Error(
        `imageGrid: row ${i} has ${r.length} values, not a multiple of ${c}x${h}x${w}`,
      );
    }
    return r.length / d;
  });
  const cols = Math.max(1, ...counts);
  const W = cols * (w + gap) - gap, H = rows.length * (h + gap) - gap;
  const rgb = new Uint8Array(W * H * 3).fill(o.background ?? 255);
  rows.forEach((row, r) => {
    for (let i = 0; i < counts[r]; i++) {
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const px = ((r * (h + gap) + y) * W + i * (w + gap) + x) * 3;
          for (let k = 0; k < 3; k++) {
            const v = row[((i * c + (c === 1 ? 0 : k)) * h + y) * w + x];
            rgb[px + k] = Math.round(Math.min(1, Math.max(0, v)) * 255);
          }
        }
      }
    }
  });
  return upscaleRgb(rgb, W, H, o.scale ?? 1);
}

/** PNG of `gridPixels(rows, shape, o)`. */
export function imageGrid(
  rows: Float32Array[],
  shape: readonly [number, number, number],
  o: GridOptions = {},
): Promise<Uint8Array> {
  const { rgb, width, height } = gridPixels(rows, shape, o);
  return encodePng(rgb, width, height);
}

/** A grid whose row i shows example i of every column array (each NCHW in [0,1]): the
 * clean / adversarial / purified layout of evaluation reports. */
export function imageGridPng(
  columns: Float32Array[],
  n: number,
  shape: readonly [number, number, number],
  gap = 2,
  scale = 3,
): Promise<Uint8Array> {
  const d = shape[0] * shape[1] * shape[2];
  const rows: Float32Array[] = [];
  for (let i = 0; i < n; i++) {
    const row = new Float32Array(columns.length * d);
    columns.forEach((col, ci) => {
      if (col.length < n * d) throw new Error(`imageGridPng: column ${ci} too short`);
      row.set(col.subarray(i * d, (i + 1) * d), ci * d);
    });
    rows.push(row);
  }
  return imageGrid(rows, shape, { gap, scale });
}
