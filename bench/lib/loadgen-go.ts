/**
 * The Go load generator of the sessions benchmark (bench/loadgen-go): built once per source
 * version with the Go toolchain and the module proxy, and cached like Centrifugo. It holds a
 * session in about a quarter of the Node load generator's memory, which is what lets one
 * machine hold the server's 200,000 sessions and their clients (bench/README.md).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { cacheDir, run, staticGoEnv, which } from '../../src/provision/exec';

const SOURCE = path.resolve(__dirname, '..', '..', '..', 'bench', 'loadgen-go');

/** The binary's path, building it first when this version of the sources has not been built. */
export async function ensureGoLoadGen(log?: (line: string) => void): Promise<string> {
  const hash = crypto.createHash('sha256');
  for (const f of ['go.mod', 'go.sum', 'main.go']) hash.update(fs.readFileSync(path.join(SOURCE, f)));
  const dir = cacheDir('loadgen-go', hash.digest('hex').slice(0, 16));
  const bin = path.join(dir, 'loadgen-go');
  if (fs.existsSync(bin)) return bin;
  const go = which('go');
  if (!go) throw new Error('the sessions benchmark builds its Go load generator (bench/loadgen-go) and go is not on PATH');
  fs.mkdirSync(dir, { recursive: true });
  const tmp = `${bin}.tmp-${process.pid}`;
  log?.(`building the Go load generator (bench/loadgen-go) into ${dir}`);
  await run(go, ['build', '-trimpath', '-o', tmp, '.'], { cwd: SOURCE, env: staticGoEnv(), timeoutMs: 10 * 60_000 });
  fs.renameSync(tmp, bin);
  return bin;
}
