/**
 * A MongoDB outage while the server runs (docs/deploy.md, MongoDB): the server's own store
 * process is killed with SIGKILL under working cores, then started again on the same port
 * and data. Meanwhile the process stays up, `/readyz` names MongoDB, the API answers 503
 * `unavailable` with Retry-After, frames are still buffered, and a checkpoint is refused
 * `unavailable` without losing them. Afterwards the same checkpoint, sent again, commits
 * them all, and what was committed before the outage is intact. `simulate` and the README's
 * core example (type-checked, then run as written) ride it out.
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { PassThrough } from 'node:stream';
import ts from 'typescript';
import t, { type Test } from 'tap';
import { CoreError } from '../src/client';
import { simulate } from '../src/cli/simulate';
import { freePort } from '../src/provision/exec';
import { startStoreServer } from '../src/provision/stack';
import type { MongoService } from '../src/provision/ferretdb';
import { remoteCoreFixture, type RemoteCoreFixture } from '../test-support/core-fixture';
import { getStack, stopStack } from '../test-support/stack';
import { tempDir } from '../test-support/temp';
import { eventually, request, startTestServer, type TestServer } from './helpers/server';
import { committedOnce } from './helpers/core';

t.teardown(stopStack);

const frames = (s: string): Array<{ name: string; data: Buffer }> => [{ name: 'frames.xtc', data: Buffer.from(s) }];

/** A server on a MongoDB of its own, which `kill` takes down (SIGKILL) and `restart` brings back on the same port and data. */
interface OutageRig {
  ts: TestServer;
  f: RemoteCoreFixture;
  kill(): Promise<void>;
  restart(): Promise<void>;
  readyz(): Promise<number>;
  /** The dev CA in a file, for clients that take a path. */
  caFile: string;
  /** Frames committed to the target's streams, all together. */
  committed(target: string): Promise<number>;
}

async function outageRig(t: Test): Promise<OutageRig> {
  const stack = await getStack();
  const dir = tempDir('sc-mongo-outage-');
  const port = await freePort();
  const start = (): Promise<MongoService> => startStoreServer({ dir, certs: stack.certs, port });
  let mongo = await start();
  const ts = await startTestServer({ 'mongodb.uri': mongo.uri, 'mongodb.serverSelectionTimeoutMs': 1500, 'health.timeoutMs': 700 });
  t.teardown(async () => {
    await ts.close();
    await mongo.stop();
  });
  const f = await remoteCoreFixture(ts.url, ts.ca, ts.server.storage.mongo.client.db(ts.settings.mongodb.database));
  const caFile = path.join(tempDir('sc-outage-ca-'), 'ca.pem');
  fs.writeFileSync(caFile, ts.ca);
  return {
    ts,
    f,
    kill: async () => {
      process.kill(mongo.pid, 'SIGKILL');
      await mongo.stop();
    },
    restart: async () => {
      mongo = await start();
    },
    readyz: async () => (await request(`${ts.url}/readyz`, { ca: ts.ca })).status,
    caFile,
    committed: async (target) =>
      (await f.api<{ streams: Array<{ frames: number }> }>('GET', `/v1/targets/${target}/streams`, f.manager)).streams.reduce((sum, s) => sum + s.frames, 0),
  };
}

t.test('MongoDB killed and started again under a working core', async (t) => {
  const rig = await outageRig(t);
  const { f } = rig;
  const { url, ca } = rig.ts;
  const { core, stream } = await committedOnce(t, f);

  await rig.kill();
  const ready = await eventually(async () => {
    const r = await request(`${url}/readyz`, { ca });
    return r.status === 503 ? r : undefined;
  }, 15000, 'readyz 503 while MongoDB is down');
  t.match(ready.json(), { status: 'unavailable', checks: { mongodb: /.+/, redis: 'ok' } });
  t.not((ready.json() as { checks: { mongodb: string } }).checks.mongodb, 'ok', '/readyz names MongoDB');
  t.equal((await request(`${url}/healthz`, { ca })).status, 200, 'the process stays up');
  const api = await f.get(`/v1/streams/${stream}`);
  t.equal(api.status, 503, 'an API read that needs MongoDB');
  t.match(api.json(), { error: { code: 'unavailable' } });
  t.ok(Number(api.headers['retry-after']) > 0, 'with Retry-After');

  t.match(await core.sendFrames(frames('b')), { seq: 3, bufferedFrames: 1 }, 'frames are still buffered: no store on that path');
  const refused = await core.checkpoint([{ name: 'state.xml', data: Buffer.from('at 2') }]).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(refused instanceof CoreError, 'the checkpoint is refused');
  t.match(refused, { code: 'unavailable' });
  t.ok((refused as CoreError).retryAfterS! > 0, 'with retry_after_s');
  await core.ping();
  t.pass('the socket stays open');

  await rig.restart();
  await eventually(async () => (await rig.readyz()) === 200, 30000, 'readyz 200 once MongoDB is back');
  // The refused checkpoint's seq was not taken: the core sends the same checkpoint again.
  const retried = await eventually(() => core.checkpoint([{ name: 'state.xml', data: Buffer.from('at 2') }]), 30000, 'the checkpoint sent again commits');
  t.match(retried, { frames: 2, partition: 2 }, 'the frame buffered during the outage is committed');

  const partitions = (await f.api<{ partitions: number[] }>('GET', `/v1/streams/${stream}/partitions`, f.manager)).partitions;
  t.same(partitions, [1, 2], 'both partitions, the one before the outage intact');
  const file = await f.get(`/v1/streams/${stream}/frames/frames.xtc`);
  t.equal(file.body.toString(), 'ab', "every committed frame's bytes, in order");
});

t.test('simulate rides out the outage: refusals waited out, no core lost, every counted frame committed', async (t) => {
  const rig = await outageRig(t);
  const { f } = rig;
  const target = await f.target();
  for (let i = 0; i < 2; i++) await f.stream(target);
  const out = Object.assign(new PassThrough(), { isTTY: false }) as unknown as NodeJS.WriteStream;
  out.resume();
  const running = simulate({ url: f.wsUrl, engineKey: f.engineKey, donorToken: f.donor, caFile: rig.caFile, cores: 2, frameBytes: 1024, checkpointEvery: 5, checkpointsPerAssignment: 1000, errorRate: 0, durationS: 14, ratePerS: 20, targetId: target, out });
  await new Promise((r) => setTimeout(r, 2000));
  await rig.kill();
  await eventually(async () => (await rig.readyz()) === 503, 15000, 'readyz 503');
  await new Promise((r) => setTimeout(r, 2000));
  await rig.restart();
  const c = await running;
  t.equal(c.errors, 0, 'no core ended by the outage');
  t.ok(c.refused > 0, `${c.refused} messages refused for now and sent again`);
  t.ok(c.commits > 0, `${c.commits} commits`);
  const committed = await rig.committed(target);
  t.equal(c.frames, committed, `${c.frames} frames counted, ${committed} committed`);
});

const ROOT = path.resolve(__dirname, '..', '..');

/**
 * The README's "Writing a core" example as a module that runs against `url`: its variables
 * (engineKey, donorToken, frameBytes, state) come from the environment, and its client
 * trusts the dev CA. Written inside the package so `stream-coordinator/client` resolves as it
 * would for a user; type-checked as written (strict) before it is run.
 */
function readmeExample(t: Test): string {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const block = /## Writing a core\s+```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  if (!block) throw new Error('README.md has no ts block under "## Writing a core"');
  const given = "import fs from 'node:fs';\nconst env = (k: string): string => process.env[k] ?? '';\nconst engineKey = env('EX_ENGINE_KEY');\nconst donorToken = env('EX_DONOR');\nconst frameBytes = Buffer.alloc(1024, 1);\nconst state = Buffer.from('state');\n";
  const text = block
    .replace("'wss://coordinator.example.org/core/v1'", "env('EX_URL')")
    .replace('engineKey, donorToken });', "engineKey, donorToken, ca: fs.readFileSync(env('EX_CA')) });");
  t.not(text, block, 'the example names its server where the test can point it elsewhere');
  const file = path.join(ROOT, 'dist', `readme-core-example-${process.pid}.mts`);
  fs.writeFileSync(file, `${given}${text}`);
  t.teardown(() => fs.rmSync(file, { force: true }));
  const program = ts.createProgram([file], { strict: true, noEmit: true, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022, skipLibCheck: true, types: ['node'] });
  const problems = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
  t.same(problems, [], 'the example type-checks');
  const js = file.replace(/\.mts$/, '.mjs');
  fs.writeFileSync(js, ts.transpileModule(fs.readFileSync(file, 'utf8'), { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText);
  t.teardown(() => fs.rmSync(js, { force: true }));
  return js;
}

t.test("the README's core example rides out the outage", async (t) => {
  const rig = await outageRig(t);
  const { f } = rig;
  const target = await f.target();
  for (let i = 0; i < 2; i++) await f.stream(target);
  const js = readmeExample(t);
  const committed = (): Promise<number> => rig.committed(target);

  let output = '';
  const core = spawn(process.execPath, [js], { env: { ...process.env, EX_URL: f.wsUrl, EX_CA: rig.caFile, EX_ENGINE_KEY: f.engineKey, EX_DONOR: f.donor }, stdio: ['ignore', 'pipe', 'pipe'] });
  core.stdout.on('data', (d: Buffer) => (output += d.toString()));
  core.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => core.on('exit', (code) => resolve(code)));
  t.teardown(() => void core.kill('SIGKILL'));

  await eventually(async () => (await committed()) >= 20, 30000, `the example committing; its output: ${output}`);
  await rig.kill();
  await eventually(async () => (await rig.readyz()) === 503, 15000, 'readyz 503');
  // Long enough for the example's next checkpoint to be refused while MongoDB is down.
  await new Promise((r) => setTimeout(r, 3000));
  await rig.restart();
  await eventually(async () => (await rig.readyz()) === 200, 30000, 'readyz 200');
  const before = await committed();
  await eventually(async () => (await committed()) >= before + 20, 30000, `the example committing again; its output: ${output}`);
  t.equal(core.exitCode, null, `the example is still running (output: ${JSON.stringify(output)})`);
  core.kill('SIGTERM');
  await exited;
  t.pass(`${await committed()} frames committed by the example`);
});
