/**
 * Test fixtures for the asset registry: hostile uploads (each must be refused before anything is
 * stored) and multipart bodies for fastify's inject. Exported as @afterglow/testkit/fixtures.
 */
import { crc32, deflateSync } from 'node:zlib';
import sharp from 'sharp';

/** A PNG from raw parts: any IHDR (greyscale, 8 bit), any IDAT payload. */
export function rawPng(width: number, height: number, idat: Buffer): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td) >>> 0);
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8;
  ihdr[9] = 0;
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', idat), chunk('IEND', Buffer.alloc(0))]);
}

/** Noise (incompressible) RGB pixels as JPEG or PNG. */
export async function noiseImage(w: number, h: number, format: 'jpeg' | 'png' = 'jpeg', seed = 7): Promise<Buffer> {
  const px = Buffer.alloc(w * h * 3);
  let s = seed >>> 0;
  for (let i = 0; i < px.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    px[i] = ((i % (w * 3)) / 6 + ((s >>> 24) & 63)) & 255;
  }
  const img = sharp(px, { raw: { width: w, height: h, channels: 3 } });
  return format === 'jpeg' ? img.jpeg({ quality: 85 }).toBuffer() : img.png({ compressionLevel: 1 }).toBuffer();
}

export interface HostileUpload {
  name: string;
  filename: string;
  bytes: Buffer;
  /** The HTTP status and error code the registry must answer. */
  status: number;
  error: string | readonly string[];
}

/**
 * Uploads that must be refused: a truncated JPEG, a PNG decompression bomb (~150 Mpixel in a few
 * kB), a file with the wrong magic (an SVG named .jpg), one over `maxBytes` (a real-looking JPEG), a
 * 1-px-wide PNG, polyglots (data after PNG IEND / JPEG EOI) and a PNG without IEND.
 */
export async function hostileUploads(maxBytes: number): Promise<HostileUpload[]> {
  const jpg = await noiseImage(640, 480);
  const w = 12_000;
  const h = 12_000;
  const bomb = rawPng(w, h, deflateSync(Buffer.alloc((w + 1) * 64), { level: 9 }));
  const png = await noiseImage(64, 48, 'png');
  let big = jpg;
  for (let side = 800; big.length <= maxBytes; side = Math.round(side * 1.5)) big = await noiseImage(side, side);
  return [
    { name: 'truncated JPEG', filename: 'cut.jpg', bytes: jpg.subarray(0, Math.floor(jpg.length * 0.6)), status: 422, error: ['truncated', 'corrupt'] },
    { name: 'PNG decompression bomb', filename: 'bomb.png', bytes: bomb, status: 413, error: ['too_many_pixels', 'too_large_side'] },
    { name: 'wrong magic (SVG named .jpg)', filename: 'vector.jpg', bytes: Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'), status: 415, error: 'unknown_format' },
    { name: 'over the byte limit', filename: 'huge.jpg', bytes: big, status: 413, error: 'too_many_bytes' },
    { name: 'empty file', filename: 'empty.jpg', bytes: Buffer.alloc(0), status: 422, error: 'empty' },
    { name: '1 x 64 PNG (under IMAGE_MIN_SIDE)', filename: 'thin.png', bytes: rawPng(1, 64, deflateSync(Buffer.alloc(2 * 64))), status: 422, error: 'too_small' },
    { name: 'PNG + zip polyglot', filename: 'poly.png', bytes: Buffer.concat([png, Buffer.from('PK\u0003\u0004\u0014\u0000zipdata', 'latin1')]), status: 422, error: 'trailing_data' },
    { name: 'PNG + HTML polyglot', filename: 'poly.png', bytes: Buffer.concat([png, Buffer.from('<html><script>alert(1)</script></html>')]), status: 422, error: 'trailing_data' },
    { name: 'PNG without IEND', filename: 'cut.png', bytes: png.subarray(0, png.length - 12), status: 422, error: 'truncated' },
    { name: 'JPEG + PDF after EOI', filename: 'poly.jpg', bytes: Buffer.concat([jpg, Buffer.from('%PDF-1.4\n1 0 obj')]), status: 422, error: 'trailing_data' },
  ];
}

/** A multipart/form-data body (for fastify inject): fields plus the file in field `image`. */
export async function multipartBody(fields: Record<string, string>, file?: { filename: string; bytes: Uint8Array }): Promise<{ payload: Buffer; headers: Record<string, string> }> {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.set(k, v);
  if (file) form.set('image', new Blob([file.bytes]), file.filename);
  const req = new Request('http://localhost/', { method: 'POST', body: form });
  return { payload: Buffer.from(await req.arrayBuffer()), headers: { 'content-type': req.headers.get('content-type')! } };
}

/** The same as a FormData (for fetch). */
export function assetForm(fields: Record<string, string>, file: { filename: string; bytes: Uint8Array }): FormData {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.set(k, v);
  form.set('image', new Blob([file.bytes]), file.filename);
  return form;
}
