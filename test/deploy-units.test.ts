/**
 * The systemd units in deploy/ (docs/deploy.md §8, docs/scaling.md "Nodes"). There is no
 * systemd to run them under here, so what can be checked without one is: systemd's own
 * offline checks (`systemd-analyze verify`, and `security --offline` for the sandboxing),
 * the unit's settings against the product's defaults and exit codes, and its `ExecStart`
 * started with its `Environment=` lines (jemalloc, V8 flags) and stopped with its
 * `KillSignal` within `TimeoutStopSec`.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { loadConfig } from '../src/config/settings';
import { getStack, stopStack } from '../test-support/stack';
import { tempDir } from '../test-support/temp';
import { eventually, listeningPort, request, runCli, stackOverrides, writeConfig } from './helpers/server';
import { freePort } from '../src/provision/exec';

t.teardown(stopStack);

const ROOT = path.resolve(__dirname, '..', '..');
const UNITS = ['stream-coordinator.service', 'stream-coordinator@.service'] as const;
/** The template is checked as one of its instances, the way it runs. */
const instanceName = (unit: string): string => unit.replace('@.', '@1.');

/** `[Section]` → key → values (a key may repeat, e.g. Environment=), comments dropped. */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const section = /^\[(\w+)\]$/.exec(line);
    if (section) {
      current = new Map();
      sections.set(section[1]!, current);
      continue;
    }
    const eq = line.indexOf('=');
    if (!current || eq < 0) throw new Error(`not a unit line: ${line}`);
    const key = line.slice(0, eq);
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1)]);
  }
  return sections;
}

function unit(name: string): { text: string; service: Map<string, string[]>; one(key: string): string; env: Record<string, string> } {
  const text = fs.readFileSync(path.join(ROOT, 'deploy', name), 'utf8');
  const service = parseUnit(text).get('Service')!;
  const one = (key: string): string => {
    const v = service.get(key);
    if (v?.length !== 1) throw new Error(`${name}: ${key}= appears ${v?.length ?? 0} times`);
    return v[0]!;
  };
  const env = Object.fromEntries((service.get('Environment') ?? []).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
  return { text, service, one, env };
}

/** systemd-analyze on a copy of `text` named `name` (in a directory of its own): exit code and everything it printed. */
function analyze(args: string[], name: string, text: string): { status: number | null; output: string } {
  const dir = tempDir('sc-units-');
  fs.writeFileSync(path.join(dir, name.replace('@1.', '@.')), text);
  const r = spawnSync('systemd-analyze', [...args, path.join(dir, name)], { encoding: 'utf8' });
  if (r.error) throw r.error;
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

for (const name of UNITS) {
  t.test(`${name}: systemd accepts every line`, async (t) => {
    const { text } = unit(name);
    const r = analyze(['verify', '--man=no'], instanceName(name), text);
    t.equal(r.status, 0);
    t.equal(r.output, '', 'nothing to say: no unknown key, no value it would ignore');
    // systemd only warns about a line it ignores, so the check above rests on its output:
    // make sure this systemd does say something about a misspelt key and a bad value.
    const broken = text.replace('KillMode=mixed', 'KilMode=mixed').replace('RestartSec=5', 'RestartSec=five');
    const said = analyze(['verify', '--man=no'], instanceName(name), broken).output;
    t.match(said, /Unknown key 'KilMode'/, 'the check can fail: a misspelt key');
    t.match(said, /Failed to parse sec value/, 'and a bad value');
  });

  t.test(`${name}: sandboxed (systemd-analyze security)`, async (t) => {
    const r = analyze(['security', '--offline=true', '--no-pager'], instanceName(name), unit(name).text);
    const level = /Overall exposure level for \S+: ([\d.]+)/.exec(r.output);
    t.ok(level, 'systemd-analyze gives an overall exposure');
    // 3.2 on systemd 252 (Debian 12) with the sandboxing the units have (docs/deploy.md §8):
    // removing most of it shows here (not UMask, ProtectHostname or RemoveIPC, which 252 weighs
    // at nothing), and other systemd versions weigh the lines differently.
    t.ok(Number(level![1]) <= 3.2, `exposure ${level![1]} (at most 3.2)`);
  });

  t.test(`${name}: settings in step with the product`, async (t) => {
    const u = unit(name);
    const d = loadConfig({ env: {}, overrides: {} });
    const example = JSON.parse(fs.readFileSync(path.join(ROOT, 'conf', 'example.json'), 'utf8')) as { dataDir: string; server: { shutdownTimeoutS: number; maxConnections: number } };
    const shutdownS = Math.max(d.server.shutdownTimeoutS, example.server.shutdownTimeoutS);
    // The primary kills workers still running 2 s after server.shutdownTimeoutS.
    t.ok(Number(u.one('TimeoutStopSec')) > shutdownS + 2, `TimeoutStopSec ${u.one('TimeoutStopSec')} > server.shutdownTimeoutS ${shutdownS} + 2`);
    t.equal(u.one('KillSignal'), 'SIGTERM', 'the signal the server drains on');
    t.equal(u.env.NODE_OPTIONS, `--max-semi-space-size=${d.server.maxSemiSpaceMiB}`, 'a single process gets server.maxSemiSpaceMiB from here');
    t.equal(Number(u.env.MALLOC_MMAP_THRESHOLD_), d.server.mallocMmapThresholdBytes, 'and server.mallocMmapThresholdBytes');
    const need = Math.max(d.server.maxConnections, example.server.maxConnections) + d.http.maxConnections + d.preflight.fdReserve;
    t.ok(Number(u.one('LimitNOFILE')) >= need, `LimitNOFILE holds what preflight needs with conf/example.json (${need})`);
    const state = u.one('StateDirectory').replace('/%i', '');
    t.equal(`/var/lib/${state}`, example.dataDir, "StateDirectory is conf/example.json's dataDir (the node's own below it for the template)");
  });
}

t.test("RestartPreventExitStatus is serve's exit status for a configuration error", async (t) => {
  const conf = writeConfig({ 'server.port': 'not a port' });
  const p = runCli(['serve', '--config', conf]);
  const { code } = await p.exited;
  for (const name of UNITS) t.equal(Number(unit(name).one('RestartPreventExitStatus')), code, `${name}: exit ${code} is not restarted`);
  t.equal(code, 2);
});

t.test("ExecStart with the unit's environment serves, and KillSignal stops it within TimeoutStopSec", async (t) => {
  const u = unit('stream-coordinator.service');
  // The unit names Debian's (and NodeSource's) node; the test runs the script with its own.
  const [node, main, ...args] = u.one('ExecStart').split(/\s+/);
  t.equal(node, '/usr/bin/node');
  t.equal(path.relative('/opt/stream-coordinator', main!), 'dist/src/cli/main.js', 'the built CLI, under WorkingDirectory');
  t.equal(u.one('WorkingDirectory'), '/opt/stream-coordinator');
  t.same(args.slice(0, 2), ['serve', '--config']);

  await getStack();
  const port = await freePort();
  // One process: the case the unit's malloc and V8 lines are there for (forked workers get them from the config anyway).
  const conf = writeConfig(await stackOverrides({ 'server.port': port, 'server.workers': 1, dataDir: tempDir('sc-unit-data-') }));
  // LD_PRELOAD names Debian's libjemalloc2 on x86_64 (the tests' set-up installs Redis, which
  // depends on it); elsewhere the unit says to change the path, and the test runs without it.
  const env = { ...u.env };
  const jemalloc = fs.existsSync(env.LD_PRELOAD!);
  if (!jemalloc) delete env.LD_PRELOAD;
  const p = runCli(['serve', '--config', conf], { env });
  t.teardown(() => void p.child.kill('SIGKILL'));
  await listeningPort(p);
  const stack = await getStack();
  const ca = fs.readFileSync(stack.certs.caCert, 'utf8');
  await eventually(async () => (await request(`https://127.0.0.1:${port}/readyz`, { ca })).status === 200, 30000, `ready; output:\n${p.output()}`);
  if (jemalloc) t.match(p.output(), /"malloc":"[^"]*libjemalloc[^"]*"[^\n]*running on a preloaded malloc/, 'the process runs on jemalloc, from LD_PRELOAD');
  else t.comment(`${u.env.LD_PRELOAD} is not on this machine: run without it`);
  const started = Date.now();
  p.child.kill(u.one('KillSignal') as NodeJS.Signals);
  const exit = await p.exited;
  t.equal(exit.code, 0, 'a clean exit: systemd does not count it as a failure');
  t.ok(Date.now() - started < Number(u.one('TimeoutStopSec')) * 1000, `stopped in ${Date.now() - started} ms`);
});
