/**
 * The start-up sweeps keep the directories of running processes, another user's included,
 * and remove those of processes that are gone (src/core/process-alive.ts).
 */
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { processRunning } from '../src/core/process-alive';

t.test('this process runs; one that has exited does not; no group or nonsense pid counts', async (t) => {
  t.ok(processRunning(process.pid));
  const child = spawn(process.execPath, ['-e', '']);
  const pid = child.pid!;
  await once(child, 'exit');
  t.notOk(processRunning(pid), 'an exited child');
  for (const pid of [0, -1, Number.NaN, 1.5]) t.notOk(processRunning(pid), `pid ${pid}`);
});

const runuser = '/usr/sbin/runuser';
const asRoot = process.getuid?.() === 0;

t.test("another user's process runs (signal 0 answers EPERM)", { skip: asRoot && !fs.existsSync(runuser) ? 'runuser is needed to check as another user' : false }, async (t) => {
  if (!asRoot) {
    t.ok(processRunning(1), 'pid 1, which belongs to root');
    return;
  }
  // As nobody, ask about this process, which is root's.
  const module = path.join(__dirname, '..', 'src', 'core', 'process-alive.js');
  const code = `process.stdout.write(String(require(${JSON.stringify(module)}).processRunning(${process.pid})))`;
  t.equal(execFileSync(runuser, ['-u', 'nobody', '--', process.execPath, '-e', code], { encoding: 'utf8' }), 'true', "nobody sees root's process as running");
});
