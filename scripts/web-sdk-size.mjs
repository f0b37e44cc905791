#!/usr/bin/env node
// Builds the web SDK (ingest/web) and prints the size of what a page downloads, raw and gzip -9.
// A build check: exits 1 when a bundle is over the budget (5 KB gzip), so a growing SDK is noticed
// where it is built, not in a test.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { buildWebSdk } from '../ingest/web/build.mjs';

const BUDGET = 5 * 1024;
const out = await buildWebSdk();
let over = false;
for (const file of [out.esm, out.iife]) {
  const raw = readFileSync(file);
  const gz = gzipSync(raw, { level: 9 }).length;
  over ||= gz > BUDGET;
  console.log(`web sdk ${path.basename(file).padEnd(18)} ${String(raw.length).padStart(6)} B raw  ${String(gz).padStart(5)} B gzip  (budget ${BUDGET} B gzip)${gz > BUDGET ? '  OVER BUDGET' : ''}`);
}
process.exit(over ? 1 : 0);
