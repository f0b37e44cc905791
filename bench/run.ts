/** `npm run bench [-- --short]`: every benchmark in turn, each printing its own figures. */
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const here = path.dirname(new URL(import.meta.url).pathname);
const benches = ['ingest.js', 'kafka-clients.js', 'validate.js', 'structures.js', 'inference-embed.js', 'features.js', 'inference.js', 'live.js', 'ws-bufferutil.js', 'tie.js', 'assets.js', 'video.js', 'edge.js', 'fuzz.js', 'ingest-hostile.js', 'soak.js', 'scale.js', 'faults.js'];
let failed = false;
for (const b of benches) {
  const r = spawnSync(process.execPath, [path.join(here, b), ...process.argv.slice(2)], { stdio: 'inherit' });
  if (r.status !== 0) failed = true;
}
process.exit(failed ? 1 : 0);
