/**
 * The manager CLI end to end: the compiled `stream-coordinator` run as a child process
 * with a temporary HOME against a real server (TLS, MongoDB wire protocol, Redis): login
 * and its 0600 file, targets, streams added from files on disk, stop/start, downloads
 * byte-identical to committed partitions, a download cut by a proxy and resumed with a
 * Range request, engine keys, users, the donor leaderboard, and the exit codes.
 */
import crypto from 'node:crypto';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { startApiServer, unknownToken, type ApiServer } from './helpers/api';
import { ApiClient } from '../src/cli/manager/client';
import { CLI } from './helpers/server';
import { stopStack } from '../test-support/stack';

const KIB = 1024;
const MIB = 1024 * KIB;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json<T = any>(): T;
}

/** Runs the compiled CLI with a clean environment (no inherited STREAM_COORDINATOR_* or XDG_CONFIG_HOME). */
function cli(args: string[], opts: { home: string; env?: Record<string, string>; input?: string }): Promise<Run> {
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: opts.home, ...opts.env };
  for (const k of Object.keys(env)) if ((k.startsWith('STREAM_COORDINATOR_') && !opts.env?.[k]) || k === 'XDG_CONFIG_HOME') delete env[k];
  const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin.end(opts.input ?? '');
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  return new Promise((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, json: () => JSON.parse(stdout) });
    }),
  );
}

/** A TCP proxy to `port` that cuts every connection once `limit` bytes have gone from the server to the client. */
function cuttingProxy(port: number, limit: number): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    sockets.add(client).add(upstream);
    let sent = 0;
    upstream.on('data', (d: Buffer) => {
      sent += d.length;
      if (sent > limit) {
        client.destroy();
        upstream.destroy();
      } else client.write(d);
    });
    client.on('data', (d: Buffer) => upstream.write(d));
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        port: (server.address() as net.AddressInfo).port,
        close: () => {
          for (const s of sockets) s.destroy();
          return new Promise((r) => server.close(() => r()));
        },
      }),
    ),
  );
}

let srv: ApiServer;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sc-cli-'));
const home = path.join(tmp, 'home');
const caFile = path.join(tmp, 'ca.pem');

t.before(async () => {
  // Small inline limit: the larger frame files go through GridFS.
  srv = await startApiServer({ 'storage.inlineMaxBytes': 64 * KIB });
  fs.mkdirSync(home);
  fs.writeFileSync(caFile, srv.ts.ca);
});
t.teardown(async () => {
  await srv?.close();
  await stopStack();
  fs.rmSync(tmp, { recursive: true, force: true });
});

t.test('the manager workflow from the command line', async (t) => {
  const { fx, api, admin } = srv;
  const url = srv.ts.url;
  const manager = await fx.manager();
  const as = (token: string) => ({ home, env: { STREAM_COORDINATOR_TOKEN: token } });
  const run = (args: string[]) => cli(args, { home });
  const cfg = path.join(home, '.config', 'stream-coordinator', 'cli.json');

  t.equal((await run(['targets', 'list'])).code, 2, 'not logged in: exit 2 (usage)');
  const help = await run(['streams', 'download', '--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /^stream-coordinator streams download\n\n {2}download <stream> .*--no-resume[^]*--json/, "a command's --help: its own flags, and --json");
  t.notMatch(help.stdout, /list <target>/, 'not the other commands of the group');
  t.match((await run(['streams', '--help'])).stdout, /list <target>[^]*download <stream>/, "the group's --help lists them all");
  const unknownFlag = await run(['targets', 'list', '--bogus']);
  t.equal(unknownFlag.code, 2, 'an unknown flag: exit 2');
  t.match(unknownFlag.stderr, /unknown option --bogus \(a value starting with "-" goes after "--"\)/);
  // A token starting with '-' (one in 32 do) is still a token.
  const bad = await cli(['login', '--url', url, '--ca', caFile, '--token', `-${unknownToken().slice(1)}`], { home });
  t.equal(bad.code, 3, 'login with an unknown token: exit 3');
  t.match(bad.stderr, /401 unauthorized/);
  t.notOk(fs.existsSync(cfg), 'a refused login saves nothing');

  // The token comes on standard input, as it would from a file (keeps it out of argv).
  const login = await cli(['login', '--url', url, '--ca', caFile, '--json'], { home, input: `${manager.token}\n` });
  t.equal(login.code, 0, login.stderr);
  t.match(login.json(), { name: manager.name, role: 'manager', config: cfg });
  t.equal(fs.statSync(cfg).mode & 0o777, 0o600, 'config file mode 0600');
  t.equal(fs.statSync(path.dirname(cfg)).mode & 0o777, 0o700, 'config directory mode 0700');
  t.match(JSON.parse(fs.readFileSync(cfg, 'utf8')), { url, ca: caFile, token: manager.token });
  t.match((await run(['whoami', '--json'])).json(), { name: manager.name, role: 'manager' });

  // Targets.
  const created = await run(['targets', 'create', '--engine', 'openmm_80_cuda', '--option', 'temperature=300', '--option', 'label=run "A"', '--option', 'note=\u001b[2Jgone', '--json']);
  t.equal(created.code, 0, created.stderr);
  const target = created.json<{ target_id: string }>().target_id;
  t.same((await api.expect<{ options: unknown }>(200, 'GET', `/v1/targets/${target}`, { token: manager.token })).options, { temperature: 300, label: 'run "A"', note: '\u001b[2Jgone' });
  const shown = await run(['targets', 'show', target]);
  t.equal(shown.code, 0);
  t.notMatch(shown.stdout, /\u001b/, 'control characters from the server never reach the terminal');
  t.ok(shown.stdout.includes('"note":"\\u001b[2Jgone"'), 'options shown as JSON');
  const updated = await run(['targets', 'update', target, '--stage', 'beta', '--unset', 'note', '--unset', 'label', '--weight', '2.5', '--json']);
  t.equal(updated.code, 0, updated.stderr);
  t.match(updated.json(), { id: target, stage: 'beta', weight: 2.5, options: { temperature: 300 } });
  t.notOk('note' in updated.json<{ options: object }>().options);
  const listed = await run(['targets', 'list', '--json']);
  t.same(listed.json<Array<{ id: string }>>().map((x) => x.id), [target]);
  const human = await run(['targets', 'list']);
  t.match(human.stdout, /^ID\s+OWNER\s+STAGE\s+WEIGHT\s+ENGINES\s+CREATED\n/);
  t.match(human.stdout, new RegExp(`${target}\\s+${manager.name}\\s+beta\\s+2\\.5\\s+openmm_80_cuda`));
  t.equal((await run(['targets', 'frobnicate'])).code, 2, 'unknown subcommand: exit 2');
  t.equal((await run(['targets', 'create', '--engine', 'openmm_80_cuda', '--colour', 'red'])).code, 2, 'unknown flag: exit 2');

  // Streams from files on disk: two directories (one stream each), then loose files with a tag.
  const seeds: Record<string, Buffer> = {};
  const dirs = ['a', 'b'].map((d) => {
    const dir = path.join(tmp, 'seeds', d);
    fs.mkdirSync(dir, { recursive: true });
    for (const name of ['state.xml', 'system.xml']) {
      seeds[`${d}/${name}`] = crypto.randomBytes(name === 'system.xml' ? 100 * KIB : 2 * KIB);
      fs.writeFileSync(path.join(dir, name), seeds[`${d}/${name}`]!);
    }
    fs.writeFileSync(path.join(dir, '.hidden'), 'skipped');
    return dir;
  });
  const added = await run(['streams', 'add', target, ...dirs, '--json']);
  t.equal(added.code, 0, added.stderr);
  const pair = added.json<Array<{ source: string; stream_id: string }>>();
  t.same(pair.map((p) => p.source), dirs);
  const tagFile = path.join(tmp, 'tag.json');
  fs.writeFileSync(tagFile, '{"replica":3}');
  const single = await run(['streams', 'add', target, path.join(dirs[0]!, 'state.xml'), '--tag', tagFile, '--json']);
  t.equal(single.code, 0, single.stderr);
  const [s1, s2, s3] = [pair[0]!.stream_id, pair[1]!.stream_id, single.json<Array<{ stream_id: string }>>()[0]!.stream_id];
  const parts = await api.expect<{ seed_files: string[]; tag_files: string[] }>(200, 'GET', `/v1/streams/${s1}/partitions`, { token: manager.token });
  t.same(parts.seed_files.sort(), ['state.xml', 'system.xml'], 'hidden files are not seeds');
  t.same((await api.call('GET', `/v1/streams/${s2}/files/system.xml`, { token: manager.token })).body, seeds['b/system.xml'], 'seed bytes arrive intact');
  t.same((await api.expect<{ tag_files: string[] }>(200, 'GET', `/v1/streams/${s3}/partitions`, { token: manager.token })).tag_files, ['tag.json']);
  t.equal((await run(['streams', 'add', target])).code, 2, 'add without files: exit 2');
  const nested = path.join(tmp, 'nested');
  fs.mkdirSync(path.join(nested, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(nested, 'state.xml'), 'top');
  fs.writeFileSync(path.join(nested, 'sub', 'deep.xml'), 'deep');
  const withSub = await run(['streams', 'add', target, nested, '--json']);
  t.equal(withSub.code, 0, withSub.stderr);
  t.match(withSub.stderr, /folders inside are not seed files, left out: sub\//, 'a folder inside is named as left out');
  await run(['streams', 'delete', withSub.json<Array<{ stream_id: string }>>()[0]!.stream_id]);
  t.match((await run(['targets', 'create', '--engine', 'openmm', '--weight', '0'])).stderr, /--weight must be a number above 0 and at most/, 'a weight of 0 is refused in words');
  t.equal((await run(['streams', 'add', target, dirs[0]!, path.join(dirs[1]!, 'state.xml')])).code, 2, 'files and directories mixed: exit 2');

  const sl = await run(['streams', 'list', target, '--json']);
  t.equal(sl.code, 0, sl.stderr);
  t.same(sl.json<Array<{ id: string; status: string }>>().map((s) => s.id).sort(), [s1, s2, s3].sort());
  t.ok(sl.json<Array<{ status: string }>>().every((s) => s.status === 'ok'));
  t.equal((await run(['streams', 'list', target, '--limit', '2', '--json'])).json<unknown[]>().length, 2);
  t.match((await run(['streams', 'list', target])).stdout, /^ID\s+STATUS\s+FRAMES\s+ERRORS\s+ACTIVE\s+CREATED\n/);

  const stopped = await run(['streams', 'stop', s1, s2, '--json']);
  t.equal(stopped.code, 0, stopped.stderr);
  t.same(stopped.json<Array<{ status: string }>>().map((s) => s.status), ['stopped', 'stopped']);
  t.equal((await api.expect<{ status: string }>(200, 'GET', `/v1/streams/${s2}`, { token: manager.token })).status, 'stopped');
  t.same((await run(['streams', 'list', target, '--status', 'stopped', '--json'])).json<Array<{ id: string }>>().map((s) => s.id).sort(), [s1, s2].sort());
  const started = await run(['streams', 'start', s1, '--json']);
  t.equal(started.json<Array<{ status: string }>>()[0]!.status, 'ok');

  // Downloads: frame files across committed partitions, byte-identical.
  const traj = [crypto.randomBytes(200 * KIB), crypto.randomBytes(300 * KIB), crypto.randomBytes(10)];
  await fx.commitPartition(s1, 3, { 'traj.dcd': traj[0]!, 'log.txt': 'step 1\n' }, { 'state.xml': 'cp1' });
  await fx.commitPartition(s1, 7, { 'traj.dcd': traj[1]!, 'log.txt': 'step 2\n' }, { 'state.xml': 'cp2' });
  await fx.commitPartition(s1, 8, { 'traj.dcd': traj[2]! }, { 'state.xml': 'cp3' });
  const out = path.join(tmp, 'out1');
  const dl = await run(['streams', 'download', s1, '--out', out, '--seeds', '--json']);
  t.equal(dl.code, 0, dl.stderr);
  t.same(fs.readFileSync(path.join(out, 'traj.dcd')), Buffer.concat(traj), 'frames byte-identical to the committed partitions');
  t.equal(fs.readFileSync(path.join(out, 'log.txt'), 'utf8'), 'step 1\nstep 2\n');
  t.same(fs.readFileSync(path.join(out, 'system.xml')), seeds['a/system.xml'], 'seed file with --seeds');
  t.same(fs.readdirSync(out).sort(), ['log.txt', 'state.xml', 'system.xml', 'traj.dcd'], 'no .part left behind');
  t.match(dl.json(), [{ name: 'traj.dcd', bytes: 500 * KIB + 10, resumed_from: 0 }]);
  t.equal((await run(['streams', 'download', s1, 'nope.dcd', '--out', out])).code, 4, 'unknown file name: exit 4');
  const cpOut = path.join(tmp, 'cp');
  const cp = await run(['streams', 'download', s1, '--checkpoint', '--out', cpOut, '--json']);
  t.equal(cp.code, 0, cp.stderr);
  t.equal(fs.readFileSync(path.join(cpOut, 'state.xml'), 'utf8'), 'cp3', '--checkpoint: the last committed partition\'s checkpoint');
  fs.writeFileSync(path.join(cpOut, '.state.xml.part'), 'Z');
  t.equal((await run(['streams', 'download', s1, '--checkpoint', '--out', cpOut])).code, 0);
  t.equal(fs.readFileSync(path.join(cpOut, 'state.xml'), 'utf8'), 'cp3', 'a partial checkpoint file (maybe of another partition) is not resumed');
  t.equal((await run(['streams', 'download', s1, '--checkpoint', '--partition', '7', '--out', path.join(tmp, 'cp7')])).code, 0);
  t.equal(fs.readFileSync(path.join(tmp, 'cp7', 'state.xml'), 'utf8'), 'cp2', '--partition N: that partition\'s');
  t.equal((await run(['streams', 'download', s1, '--checkpoint', '--partition', '5', '--out', cpOut])).code, 4, 'no such partition: exit 4');
  t.equal((await run(['streams', 'download', s1, '--partition', '7', '--out', cpOut])).code, 2, '--partition without --checkpoint: exit 2');
  const started2 = Date.now();
  const proc = await run(['streams', 'download', s1, '--out', '/proc/stream-coordinator-test']);
  t.equal(proc.code, 1, `a folder that cannot be made: exit 1 after ${Date.now() - started2} ms (Node's recursive mkdir spins on /proc)`);
  t.notMatch(proc.stderr, /\n\s+at /, `one line, no stack (${proc.stderr.trim()})`);
  const underFile = await run(['streams', 'download', s1, '--out', path.join(out, 'traj.dcd', 'x')]);
  t.equal(underFile.code, 2, 'an --out under a file: exit 2');
  t.match(underFile.stderr, /traj\.dcd is not a folder/);
  for (let n = 9; n <= 20; n++) await fx.commitPartition(s3, n, { 'x.dcd': 'x' });
  t.match((await run(['streams', 'show', s3])).stdout, /partitions\s+12 \(the last 10: 11 12 13 14 15 16 17 18 19 20; all with --json\)/, 'show: a long list of partitions is its count and last ends');
  // A partial file and its record are hidden names no stream file can have (file names start
  // with a letter or digit): files named like another's partial file and record come through.
  await fx.commitPartition(s3, 21, { 'x.dcd.part': 'P', 'x.dcd.part.source': 'S' });
  const outNames = path.join(tmp, 'outNames');
  t.equal((await run(['streams', 'download', s3, '--out', outNames])).code, 0);
  const got = Object.fromEntries(fs.readdirSync(outNames).map((n) => [n, fs.readFileSync(path.join(outNames, n), 'utf8')]));
  const expected = { 'x.dcd': 'x'.repeat(12), 'x.dcd.part': 'P', 'x.dcd.part.source': 'S' };
  t.same(got, expected, 'files named <x>.part and <x>.part.source come through');
  t.equal((await run(['streams', 'download', s3, 'x.dcd', '--out', outNames])).code, 0);
  const after = Object.fromEntries(fs.readdirSync(outNames).map((n) => [n, fs.readFileSync(path.join(outNames, n), 'utf8')]));
  t.same(after, expected, 'downloading <x> again leaves the files <x>.part and <x>.part.source alone');

  // An interrupted download: a proxy cuts the connection partway, the same command resumes.
  const big = [crypto.randomBytes(MIB), crypto.randomBytes(MIB), crypto.randomBytes(MIB)];
  for (const [i, b] of big.entries()) await fx.commitPartition(s2, (i + 1) * 10, { 'big.dcd': b });
  const proxy = await cuttingProxy(srv.ts.server.port, 1.2 * MIB);
  t.teardown(proxy.close);
  const out2 = path.join(tmp, 'out2');
  const cut = await cli(['streams', 'download', s2, '--out', out2], { home, env: { STREAM_COORDINATOR_URL: `https://127.0.0.1:${proxy.port}` } });
  t.equal(cut.code, 6, `a cut connection: exit 6 (${cut.stderr.trim()})`);
  t.match(cut.stderr, /run the same command again to resume/);
  const held = fs.statSync(path.join(out2, '.big.dcd.part')).size;
  t.ok(held > 0 && held < 3 * MIB, `a partial file of ${held} bytes is kept`);
  t.notOk(fs.existsSync(path.join(out2, 'big.dcd')));
  const resumed = await run(['streams', 'download', s2, '--out', out2, '--json']);
  t.equal(resumed.code, 0, resumed.stderr);
  t.match(resumed.json(), [{ name: 'big.dcd', bytes: 3 * MIB, resumed_from: held }]);
  t.same(fs.readFileSync(path.join(out2, 'big.dcd')), Buffer.concat(big), 'resumed file byte-identical');
  const ranged = srv.ts.logLines().filter((l) => l.route === '/v1/streams/:id/frames/:name' && l.status === 206);
  t.equal(ranged.length, 1, 'the resume was one 206 reply');
  const again = await run(['streams', 'download', s2, '--out', out2, '--no-resume', '--json']);
  t.match(again.json(), [{ bytes: 3 * MIB, resumed_from: 0 }], '--no-resume downloads it whole');
  // A partial file of another stream's file of the same name is not a prefix of this one.
  const outOther = path.join(tmp, 'outOther');
  fs.mkdirSync(outOther);
  fs.writeFileSync(path.join(outOther, '.big.dcd.part'), crypto.randomBytes(1000));
  fs.writeFileSync(path.join(outOther, '.big.dcd.part.source'), `/v1/streams/${s1}/frames/big.dcd\n`);
  const other = await run(['streams', 'download', s2, '--out', outOther, '--json']);
  t.match(other.json(), [{ bytes: 3 * MIB, resumed_from: 0 }], "another stream's partial file is not resumed");
  t.same(fs.readFileSync(path.join(outOther, 'big.dcd')), Buffer.concat(big));
  t.same(fs.readdirSync(outOther), ['big.dcd'], 'no .part or .part.source left behind');
  fs.writeFileSync(path.join(outOther, '.big.dcd.part'), crypto.randomBytes(1000));
  t.match((await run(['streams', 'download', s2, '--out', outOther, '--json'])).json(), [{ resumed_from: 0 }], 'a partial file with no source is not resumed');
  // A first attempt that fails before its first byte leaves no other file's bytes under this file's record.
  fs.writeFileSync(path.join(outOther, '.big.dcd.part'), crypto.randomBytes(1000));
  fs.writeFileSync(path.join(outOther, '.big.dcd.part.source'), `/v1/streams/${s1}/frames/big.dcd\n`);
  const direct = new ApiClient({ url, ca: caFile, token: manager.token });
  t.teardown(() => direct.close());
  await t.rejects(direct.download(`/v1/streams/${s2}/frames/nope.dcd`, path.join(outOther, '.big.dcd.part'), { resume: true }), 'a file the stream lacks: refused');
  t.same(fs.readdirSync(outOther).filter((n) => n.startsWith('.big.dcd.')), [], "the other stream's partial file and its record are gone");
  t.match((await run(['streams', 'download', s2, '--out', outOther, '--json'])).json(), [{ resumed_from: 0 }], 'the retry starts from the beginning');
  // A partial download an earlier version left under the old names, with its record: taken over and resumed.
  const outOld = path.join(tmp, 'outOld');
  fs.mkdirSync(outOld);
  fs.writeFileSync(path.join(outOld, 'big.dcd.part'), Buffer.concat(big).subarray(0, 1000));
  fs.writeFileSync(path.join(outOld, 'big.dcd.part.source'), `/v1/streams/${s2}/frames/big.dcd\n`);
  t.match((await run(['streams', 'download', s2, '--out', outOld, '--json'])).json(), [{ bytes: 3 * MIB, resumed_from: 1000 }], 'an old-style partial file is resumed');
  t.same(fs.readdirSync(outOld), ['big.dcd'], 'and its old names are gone');
  t.same(fs.readFileSync(path.join(outOld, 'big.dcd')), Buffer.concat(big));
  t.same(fs.readFileSync(path.join(outOther, 'big.dcd')), Buffer.concat(big));

  // On a terminal (a pseudo-terminal from util-linux `script`) a progress bar runs on stderr.
  const out3 = path.join(tmp, 'out3');
  const tty = await inTerminal([process.execPath, CLI, 'streams', 'download', s2, 'big.dcd', '--out', out3], { HOME: home });
  t.equal(tty.code, 0, tty.output);
  t.match(tty.output, /\r\u001b\[Kbig\.dcd \[#+\] 100% 3\.0 MiB\/3\.0 MiB/, 'progress bar drawn');
  t.same(fs.readFileSync(path.join(out3, 'big.dcd')), Buffer.concat(big));
  const piped = await run(['streams', 'download', s2, 'big.dcd', '--out', out3]);
  t.notMatch(piped.stderr, /%/, 'no progress bar when stderr is not a terminal');

  // Exit codes for the common failures.
  const missing = 'AAAAAAAAAAAAAAAAAAAAAA';
  const nf = await run(['streams', 'list', missing]);
  t.equal(nf.code, 4, 'missing target: exit 4');
  t.match(nf.stderr, /404 not_found/);
  t.equal((await run(['targets', 'show', missing])).code, 4);
  // One id in 32 starts with '-': it is still an id, not a flag.
  t.equal((await run(['streams', 'show', '-AAAAAAAAAAAAAAAAAAAAA'])).code, 4, 'an id starting with "-" is an argument');
  const badToken = await cli(['targets', 'list'], as(unknownToken()));
  t.equal(badToken.code, 3, 'unknown token (the environment wins over the file): exit 3');
  t.equal((await run(['targets', 'delete', target])).code, 5, 'deleting a target with streams: exit 5 (409)');
  t.equal((await run(['keys', 'list'])).code, 3, 'a manager listing keys: exit 3 (403)');
  const deleted = await run(['streams', 'delete', s1, s2, s3, '--json']);
  t.equal(deleted.code, 0, deleted.stderr);
  t.equal((await run(['streams', 'stop', s1])).code, 4, 'stopping a deleted stream: exit 4');
  t.equal((await run(['targets', 'delete', target])).code, 0);
  t.equal((await api.call('GET', `/v1/targets/${target}`, { token: manager.token })).status, 404);
  const down = await cli(['targets', 'list'], { home, env: { STREAM_COORDINATOR_URL: `https://127.0.0.1:${await closedPort()}` } });
  t.equal(down.code, 6, 'server unreachable: exit 6');

  // Admin commands: engine keys and users (the admin's token from the environment).
  const asAdmin = (args: string[]) => cli(args, as(admin.token));
  const key = await asAdmin(['keys', 'create', 'openmm_80_cuda', '--description', 'cluster A', '--json']);
  t.equal(key.code, 0, key.stderr);
  const k = key.json<{ id: string; engine: string; key: string }>();
  t.match(k, { engine: 'openmm_80_cuda', key: /^[A-Za-z0-9_-]{43}$/ });
  t.match((await asAdmin(['keys', 'create', 'openmm_80_cuda'])).stdout, /Shown once/);
  t.match((await asAdmin(['keys', 'list', '--json'])).json<Array<{ id: string }>>().find((x) => x.id === k.id), { description: 'cluster A', revoked_at: undefined });
  t.equal((await asAdmin(['keys', 'revoke', k.id])).code, 0);
  t.match((await asAdmin(['keys', 'list', '--json'])).json<Array<{ id: string; revoked_at?: string }>>().find((x) => x.id === k.id), { revoked_at: /^\d{4}-/ });
  t.equal((await asAdmin(['keys', 'revoke', missing])).code, 4);
  await asAdmin(['keys', 'create', 'openmm_80_cuda', '--description', 'evil \u001b]0;owned\u0007 \u009b2J']);
  const keyTable = (await asAdmin(['keys', 'list'])).stdout;
  t.match(keyTable, /evil \?\]0;owned\? \?2J/, 'control characters in a key description are replaced in tables');
  t.notMatch(keyTable, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);

  const name = `cli-user-${process.pid}`;
  const u = await asAdmin(['users', 'create', name, '--json']);
  t.equal(u.code, 0, u.stderr);
  const token1 = u.json<{ token: string }>().token;
  t.match((await cli(['whoami', '--json'], as(token1))).json(), { name, role: 'manager' });
  t.equal((await asAdmin(['users', 'create', name])).code, 5, 'a taken name: exit 5 (409)');
  t.ok((await asAdmin(['users', 'list', '--json'])).json<Array<{ name: string }>>().some((x) => x.name === name));
  const rotated = await cli(['users', 'token', name, '--json'], as(token1));
  t.equal(rotated.code, 0, 'a user may rotate its own token');
  t.equal((await cli(['whoami'], as(token1))).code, 3, 'the old token stops working');
  t.equal((await cli(['whoami'], as(rotated.json<{ token: string }>().token))).code, 0);
  t.equal((await cli(['users', 'list'], as(token1))).code, 3);

  // The donor leaderboard.
  const donors = [await fx.donor(), await fx.donor(), await fx.donor()];
  const db = srv.ts.server.storage.mongo.db;
  await db.collection('donors').updateOne({ name: donors[1]!.name }, { $set: { frames: 9_000_000, coreSeconds: 7200 } });
  await db.collection('donors').updateOne({ name: donors[2]!.name }, { $set: { frames: 8_000_000, coreSeconds: 3600 } });
  const top = await run(['donors', 'top', '2', '--json']);
  t.equal(top.code, 0, top.stderr);
  t.same(top.json<Array<{ name: string }>>().map((d) => d.name), [donors[1]!.name, donors[2]!.name]);
  t.match((await run(['donors', 'top', '2'])).stdout, new RegExp(`^RANK\\s+DONOR\\s+FRAMES\\s+CORE-HOURS\\s+SINCE\\n\\s+1\\s+${donors[1]!.name}\\s+9000000\\s+2\\.0`));
  t.equal((await run(['donors', 'top', 'many'])).code, 2);

  const logout = await run(['logout']);
  t.equal(logout.code, 0);
  t.notOk(fs.existsSync(cfg));
});

t.test('downloads answer single byte ranges', async (t) => {
  const { fx, api, admin } = srv;
  const manager = await fx.manager();
  const target = await fx.target(manager);
  // Over two GridFS chunks (255 KiB each): ranges start inside the second or third.
  const bytes = crypto.randomBytes(600 * KIB);
  const stream = await fx.stream(manager, target, { 'state.xml': bytes });
  const get = (range?: string) => api.call('GET', `/v1/streams/${stream}/files/state.xml`, { token: manager.token, headers: range ? { range } : {} });
  const whole = await get();
  t.equal(whole.status, 200);
  t.equal(whole.headers['accept-ranges'], 'bytes');
  t.same(whole.body, bytes);
  const mid = await get('bytes=300000-530999');
  t.equal(mid.status, 206);
  t.equal(mid.headers['content-range'], `bytes 300000-530999/${bytes.length}`);
  t.same(mid.body, bytes.subarray(300000, 531000), 'a range across a GridFS chunk boundary');
  const tail = await get('bytes=-10');
  t.equal(tail.headers['content-range'], `bytes ${bytes.length - 10}-${bytes.length - 1}/${bytes.length}`);
  t.same(tail.body, bytes.subarray(bytes.length - 10));
  const open = await get(`bytes=${bytes.length - 5}-`);
  t.same(open.body, bytes.subarray(bytes.length - 5));
  const past = await get(`bytes=${bytes.length}-`);
  t.equal(past.status, 416);
  t.equal(past.headers['content-range'], `bytes */${bytes.length}`);
  t.equal(past.json<{ error: { code: string } }>().error.code, 'range_not_satisfiable');
  const multi = await get('bytes=0-1,5-6');
  t.equal(multi.status, 200, 'several ranges: the whole file');
  t.same(multi.body, bytes);
  t.equal((await get('bytes=10-5')).status, 200, 'an inverted range is ignored');

  // Whole frame files: partitions inline (small) and in GridFS, ranges starting in any of them.
  const parts = [crypto.randomBytes(10 * KIB), crypto.randomBytes(300 * KIB), crypto.randomBytes(5), crypto.randomBytes(70 * KIB)];
  for (const [i, p] of parts.entries()) await fx.commitPartition(stream, (i + 1) * 5, { 'f.dcd': p });
  const all = Buffer.concat(parts);
  for (const [start, end] of [[0, 9], [10 * KIB - 1, 10 * KIB], [10 * KIB + 1000, 310 * KIB + 2], [310 * KIB + 3, all.length - 1], [all.length - 1, all.length + 50]] as const) {
    const r = await api.call('GET', `/v1/streams/${stream}/frames/f.dcd`, { token: manager.token, headers: { range: `bytes=${start}-${end}` } });
    const last = Math.min(end, all.length - 1);
    t.equal(r.headers['content-range'], `bytes ${start}-${last}/${all.length}`);
    t.same(r.body, all.subarray(start, last + 1), `frames bytes ${start}-${end}`);
  }
  const json = await api.call('GET', `/v1/streams/${stream}`, { token: admin.token, headers: { range: 'bytes=0-3' } });
  t.equal(json.status, 200, 'JSON replies ignore Range');
  t.notOk(json.headers['accept-ranges']);
});

/** Runs a command on a pseudo-terminal (util-linux `script`); its output is what the terminal showed. */
function inTerminal(argv: string[], env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const quoted = argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const all: NodeJS.ProcessEnv = { ...process.env, ...env, TERM: 'xterm' };
  for (const k of Object.keys(all)) if (k.startsWith('STREAM_COORDINATOR_') || k === 'XDG_CONFIG_HOME') delete all[k];
  const child = spawn('script', ['-qec', quoted, '/dev/null'], { env: all, stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  child.stdin.end();
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, output })));
}

/** A loopback port with nothing listening. */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}
