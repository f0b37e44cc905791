import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

/** Runs createLogger in a child whose stdout is a pipe (never a terminal), returning what it wrote. */
function logged(format: string): string {
  const code = `
    import { createLogger } from ${JSON.stringify(new URL('./log.ts', import.meta.url).href)};
    const log = createLogger('info', { service: 'afterglow', role: 'probe' }, ${JSON.stringify(format)});
    log.info({ url: 'http://127.0.0.1:8080', req: { headers: { authorization: 'Bearer sekret' } } }, 'afterglow is running');
    log.debug('below the level');`;
  return execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    encoding: 'utf8',
  });
}

test('json (and auto when stdout is not a terminal) writes one JSON object per line, keys redacted', () => {
  for (const format of ['json', 'auto']) {
    const lines = logged(format).trim().split('\n');
    assert.equal(lines.length, 1, `${format}: ${lines.join(' | ')}`);
    const record = JSON.parse(lines[0]!) as Record<string, unknown>;
    assert.equal(record.msg, 'afterglow is running');
    assert.equal(record.role, 'probe');
    assert.equal(record.level, 30);
    assert.deepEqual(record.req, { headers: { authorization: '[redacted]' } });
  }
});

test('pretty writes a line a person reads: time, level, message and fields, keys still redacted', () => {
  const out = logged('pretty');
  const lines = out.trim().split('\n');
  assert.equal(lines.length, 1, out);
  assert.match(lines[0]!, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: afterglow is running \{.*"role":"probe".*\}$/);
  assert.ok(!out.includes('sekret'), out);
  assert.ok(out.includes('[redacted]'));
  assert.throws(() => JSON.parse(lines[0]!));
});
