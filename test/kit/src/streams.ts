import { Writable } from 'node:stream';

/** A writable that keeps what is written to it in `text` (a command's stderr or stdout in tests). */
export function textSink(): Writable & { text: string } {
  const w = new Writable({
    write(chunk, _enc, cb) {
      w.text += String(chunk);
      cb();
    },
  }) as Writable & { text: string };
  w.text = '';
  return w;
}
