// PNG grid of clean / adversarial / purified images (one row per example, one column per
// kind, 2-pixel gaps). A minimal PNG encoder: 8-bit RGB, zlib via CompressionStream.

let crcTable: Uint32Array | null = null;
function crc32(bytes: Uint8Array): number {
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

async function zlib(data: Uint8Array): Promise<Uint8Array> {
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

/** Encodes 8-bit RGB pixels (row-major, 3 bytes each) as a PNG file. */
export async function encodePngRgb(rgb: Uint8Array, width: number, height: number) {
  if (rgb.length !== width * height * 3) {
    throw new Error(`encodePngRgb: ${rgb.length} bytes for ${width}x${height} RGB`);
  }
  const raw = new Uint8Array(height * (1 + width * 3));
  for (let y = 0; y < height; y++) {
    raw[y * (1 + width * 3)] = 0; // filter: none
    raw.set(rgb.subarray(y * width * 3, (y + 1) * width * 3), y * (1 + width * 3) + 1);
  }
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, width);
  dv.setUint32(4, height);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit, truecolor, deflate, no filter, no interlace
  const parts = [
    new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]),
    chunk("IHDR", ihdr),
    chunk("IDAT", await zlib(raw)),
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

/** A grid PNG: row i shows example i of every column (each NCHW in [0,1], C = 1 or 3). */
export function imageGridPng(
  columns: Float32Array[],
  n: number,
  shape: readonly [number, number, number],
  gap = 2,
): Promise<Uint8Array> {
  const [c, h, w] = shape;
  if (c !== 1 && c !== 3) throw new Error(`imageGridPng: need 1 or 3 channels, got ${c}`);
  const W = columns.length * (w + gap) - gap, H = n * (h + gap) - gap;
  const rgb = new Uint8Array(W * H * 3).fill(255);
  columns.forEach((col, ci) => {
    if (col.length < n * c * h * w) throw new Error(`imageGridPng: column ${ci} too short`);
    for (let i = 0; i < n; i++) {
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const px = ((i * (h + gap) + y) * W + ci * (w + gap) + x) * 3;
          for (let k = 0; k < 3; k++) {
            const v = col[((i * c + (c === 1 ? 0 : k)) * h + y) * w + x];
            rgb[px + k] = Math.round(Math.min(1, Math.max(0, v)) * 255);
          }
        }
      }
    }
  });
  return encodePngRgb(rgb, W, H);
}
