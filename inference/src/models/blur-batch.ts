/**
 * The models' anti-aliasing blur (manifest `preprocessing.blurSigma`), done for many images at once.
 * sharp's Gaussian blur has a fixed cost of about 2 ms per call (libvips builds the mask and its
 * vector code each time) against ~0.05 ms of arithmetic for a 224 x 224 image, so blurring every
 * view alone cost more than resizing it. Stacking images into one tall image, each between copies of
 * its own first and last rows (libvips extends an image's edges by copying them), and blurring once
 * gives the same bytes as blurring each alone (checked in ./blur-batch.test.ts) at a third of the time.
 */
import sharp from 'sharp';

/** Rows of padding between stacked images: more than the blur mask's radius (~1.8 sigma at libvips' default min_ampl 0.2). */
export function blurPadding(sigma: number): number {
  return Math.ceil(3 * sigma) + 1;
}

/**
 * Blurs `images` (each `width` x `height` x 3 uint8 RGB, row-major) with one sharp call; same bytes as
 * one call each. RGB only: one-band images took a libvips path whose rounding differs between the two.
 */
export async function blurStacked(images: readonly Uint8Array[], width: number, height: number, channels: number, sigma: number): Promise<Uint8Array[]> {
  if (channels !== 3) throw new RangeError(`stacked blur is for RGB images, got ${channels} channels`);
  if (images.length === 0) return [];
  const row = width * channels;
  const size = row * height;
  for (const im of images) if (im.byteLength !== size) throw new RangeError(`image of ${im.byteLength} bytes, expected ${width}x${height}x${channels}`);
  const pad = blurPadding(sigma);
  const slot = (height + 2 * pad) * row;
  const stack = Buffer.alloc(images.length * slot);
  images.forEach((im, k) => {
    const at = k * slot;
    const first = im.subarray(0, row);
    const last = im.subarray(size - row, size);
    for (let r = 0; r < pad; r++) {
      stack.set(first, at + r * row);
      stack.set(last, at + (pad + height + r) * row);
    }
    stack.set(im, at + pad * row);
  });
  const out = await sharp(stack, { raw: { width, height: images.length * (height + 2 * pad), channels: 3 } })
    .blur(sigma)
    .raw()
    .toBuffer();
  return images.map((_, k) => new Uint8Array(out.buffer, out.byteOffset + k * slot + pad * row, size));
}

/**
 * Collects blur requests from concurrent callers and serves them in stacks: whenever fewer than
 * `concurrency` stacks are being blurred, everything queued (up to `maxStack` images of one shape)
 * goes out as one. A lone request never waits for others.
 */
export class BlurBatcher {
  private readonly queue: Array<{ image: Uint8Array; key: string; width: number; height: number; channels: number; sigma: number; resolve: (b: Uint8Array) => void; reject: (e: unknown) => void }> = [];
  private active = 0;

  constructor(
    private readonly concurrency = 2,
    private readonly maxStack = 32,
  ) {}

  blur(image: Uint8Array, width: number, height: number, channels: number, sigma: number): Promise<Uint8Array> {
    return new Promise((resolve, reject) => {
      this.queue.push({ image, key: `${width}x${height}x${channels}:${sigma}`, width, height, channels, sigma, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.queue.length > 0 && this.active < this.concurrency) {
      const key = this.queue[0]!.key;
      const batch: typeof this.queue = [];
      for (let i = 0; i < this.queue.length && batch.length < this.maxStack; ) {
        if (this.queue[i]!.key === key) batch.push(...this.queue.splice(i, 1));
        else i++;
      }
      this.active++;
      const { width, height, channels, sigma } = batch[0]!;
      void blurStacked(
        batch.map((b) => b.image),
        width,
        height,
        channels,
        sigma,
      )
        .then(
          (out) => batch.forEach((b, i) => b.resolve(out[i]!)),
          (err: unknown) => batch.forEach((b) => b.reject(err)),
        )
        .finally(() => {
          this.active--;
          this.pump();
        });
    }
  }
}
