/**
 * The start-up sweeps keep the directories of running processes, another user's included,
 * and remove those of processes that are gone (src/core/process-alive.ts).
 */
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
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
  // As nobody, ask about this process, which is root's. The function goes as source, and the
  // child runs without NODE_OPTIONS (tap puts its --import there): nobody may not be able to
  // read the checkout, e.g. a clone in a private temporary directory.
  const code = `const processRunning = ${processRunning.toString()}; process.stdout.write(String(processRunning(${process.pid})))`;
  const out = execFileSync(runuser, ['-u', 'nobody', '--', 'env', '-u', 'NODE_OPTIONS', process.execPath, '-e', code], { encoding: 'utf8', cwd: '/' });
  t.equal(out, 'true', "nobody sees root's process as running");
});
