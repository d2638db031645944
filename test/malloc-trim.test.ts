/**
 * malloc_trim (src/malloc-trim.ts, vendor/malloc-trim): the vendored binary is the one its
 * BUILD.md names, a trim really hands back pages freed inside the heap (in a child process
 * whose heap is fragmented on purpose), and a server trims on server.mallocTrimIntervalS and
 * counts it, or never when the key is 0.
 */
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { loadMallocTrim } from '../src/malloc-trim';
import type { RunningServer } from '../src/server';
import { eventually, startTestServer } from './helpers/server';
import { stopStack } from '../test-support/stack';

const ROOT = path.resolve(__dirname, '..', '..');
const DIR = path.join(ROOT, 'vendor', 'malloc-trim');

t.teardown(stopStack);

t.test('the vendored binary is the one BUILD.md names', async (t) => {
  const named = /sha256 ([0-9a-f]{64})/.exec(fs.readFileSync(path.join(DIR, 'BUILD.md'), 'utf8'))?.[1];
  const actual = crypto.createHash('sha256').update(fs.readFileSync(path.join(DIR, 'malloc_trim_linux_x64.node'))).digest('hex');
  t.equal(actual, named);
});

t.test('a missing build says why instead of throwing', async (t) => {
  const loaded = loadMallocTrim(path.join(ROOT, 'no-such-root'));
  t.ok('reason' in loaded && /no-such-root/.test(loaded.reason), JSON.stringify(loaded));
});

/**
 * A child process fills 256 MiB of 16 KiB buffers, each followed by a 64-byte one it keeps,
 * frees the large ones and collects them: the freed chunks sit between live ones, so free()
 * cannot return them and RSS stays. Then it trims. Buffers' memory comes from malloc.
 */
const FRAGMENT = `
const { loadMallocTrim } = require(${JSON.stringify(path.join(ROOT, 'dist', 'src', 'malloc-trim.js'))});
const loaded = loadMallocTrim(${JSON.stringify(ROOT)});
const mib = () => process.memoryUsage.rss() / 2 ** 20;
let big = [];
const small = [];
for (let i = 0; i < 16384; i++) {
  big.push(Buffer.allocUnsafeSlow(16384).fill(1));
  small.push(Buffer.allocUnsafeSlow(64).fill(2));
}
const full = mib();
big = null;
(async () => {
  for (let i = 0; i < 5; i++) {
    global.gc();
    await new Promise((r) => setTimeout(r, 50));
  }
  const freed = mib();
  const released = loaded.trim();
  console.log(JSON.stringify({ full, freed, trimmed: mib(), released, kept: small.length }));
})();
`;

t.test('a trim hands back the pages freed between live allocations', async (t) => {
  const out = execFileSync(process.execPath, ['--expose-gc', '-e', FRAGMENT], { encoding: 'utf8', env: { ...process.env, MALLOC_MMAP_THRESHOLD_: '131072' } });
  const r = JSON.parse(out) as { full: number; freed: number; trimmed: number; released: boolean };
  t.comment(`RSS: ${r.full.toFixed(0)} MiB filled, ${r.freed.toFixed(0)} MiB after freeing 256 MiB, ${r.trimmed.toFixed(0)} MiB after the trim`);
  t.ok(r.freed > r.full - 64, 'freeing alone leaves the pages resident');
  t.equal(r.released, true, 'malloc_trim reports memory returned');
  t.ok(r.freed - r.trimmed > 128, `the trim returned more than 128 of the 256 MiB (${(r.freed - r.trimmed).toFixed(0)} MiB)`);
});

async function trims(server: RunningServer): Promise<number> {
  const { values } = await server.metrics.mallocTrimSeconds.get();
  return values.find((v) => v.metricName === 'coordinator_malloc_trim_seconds_count')?.value ?? 0;
}

t.test('a server trims every server.mallocTrimIntervalS and counts each trim', async (t) => {
  const ts = await startTestServer({ 'server.mallocTrimIntervalS': 1 });
  t.teardown(() => ts.close());
  const n = await eventually(async () => ((await trims(ts.server)) >= 2 ? trims(ts.server) : undefined), 10_000, 'two trims');
  t.ok(n >= 2, `${n} trims counted`);
  t.notOk(ts.logLines().some((l) => /malloc_trim is not available/.test(String(l.msg))), 'no warning that it is unavailable');
});

t.test('0 turns trimming off', async (t) => {
  const ts = await startTestServer({ 'server.mallocTrimIntervalS': 0 });
  t.teardown(() => ts.close());
  await new Promise((r) => setTimeout(r, 2500));
  t.equal(await trims(ts.server), 0);
});
