/**
 * The Go load generator's own unit tests (bench/loadgen-go/main_test.go): how it reads the
 * reply to assign, which it parses only up to the type so that an assignment's 270 KiB of
 * seed files cost it no JSON scan. The end-to-end behaviour against a real server is in
 * bench-loadgen-retry.test.ts.
 */
import path from 'node:path';
import t from 'tap';
import { run, staticGoEnv, which } from '../src/provision/exec';

const SOURCE = path.resolve(__dirname, '..', '..', 'bench', 'loadgen-go');

t.test('go test in bench/loadgen-go passes', async (t) => {
  const go = which('go');
  if (!go) throw new Error('go is not on PATH: the sessions benchmark and these tests need it');
  const { stdout } = await run(go, ['test', '-count=1', './...'], { cwd: SOURCE, env: staticGoEnv(), timeoutMs: 10 * 60_000 });
  t.match(stdout, /^ok\s/m, stdout.trim());
});
