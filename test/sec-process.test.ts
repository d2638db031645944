/**
 * Unhandled rejections (issue 12): the server entry installs a process-level handler that
 * logs and counts them and keeps the process alive; and the spill-file removal on a
 * session's close path never rejects, even when the file cannot be removed.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { FrameBuffer } from '../src/core/frame-buffer';
import { memoryLogger } from './helpers/server';

t.test('an unhandled rejection is logged and counted, and the process lives on', async (t) => {
  const dist = path.resolve(__dirname, '..', 'src');
  const script = `
    const pino = require('pino');
    const { Metrics } = require(${JSON.stringify(path.join(dist, 'telemetry', 'metrics.js'))});
    const { guardProcess } = require(${JSON.stringify(path.join(dist, 'telemetry', 'process-guards.js'))});
    const metrics = new Metrics();
    guardProcess(pino(), metrics);
    Promise.reject(new Error('spill rm failed'));
    Promise.reject(new Error('second'));
    setTimeout(async () => {
      const text = await metrics.registry.metrics();
      process.stdout.write('\\nCOUNT ' + /coordinator_unhandled_rejections_total(?:\\{[^}]*\\})? (\\d+)/.exec(text)[1] + '\\n');
      process.exit(0);
    }, 200);
  `;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20000 });
  t.equal(r.status, 0, `the process exits normally (stderr: ${r.stderr.slice(0, 300)})`);
  t.match(r.stdout, /COUNT 2\n/, 'both rejections counted');
  t.match(r.stdout, /"level":50.*"message":"spill rm failed".*unhandled promise rejection/, 'logged at error level with the error');
});

t.test('FrameBuffer.clear resolves when its spill file cannot be removed', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sc-spill-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  const dir = path.join(root, 'spill');
  const mem = memoryLogger();
  const buf = new FrameBuffer(dir, 4, 'leak', mem.log);
  await buf.append([{ name: 'frames.xtc', bytes: Buffer.alloc(64, 1) }], 1);
  t.ok(fs.readdirSync(dir).some((f) => f.endsWith('.spill')), 'the buffer spilled');
  // The spill directory becomes a plain file: removing dir/<id>.spill fails with ENOTDIR.
  fs.renameSync(dir, `${dir}.moved`);
  fs.writeFileSync(dir, 'not a directory');
  await t.resolves(buf.clear(), 'clear() does not reject');
  t.match(mem.raw(), /could not remove a spill file/, 'the leak is logged');
  t.equal(buf.bytes, 0);
});
