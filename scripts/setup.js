#!/usr/bin/env node
/**
 * The set-up behind `npm test` (pretest) and `npm run dev` (predev), so that a fresh clone
 * needs nothing typed before those two commands:
 *
 *   1. Node.js ≥ 20, else stop with the fix.
 *   2. System packages (Debian/Ubuntu): installed with apt-get when running as root, else
 *      one line saying exactly what to install. Go is checked only when no `mongod` is on
 *      PATH and FerretDB is not built yet (it is built from the Go module proxy once).
 *   3. npm dependencies: `npm ci` when node_modules is missing or older than package-lock.json.
 *   4. The build (`npm run build`: the TypeScript into dist/).
 *
 * Plain JavaScript with Node's own modules only: it runs before any dependency exists.
 * Usage: node scripts/setup.js test|dev
 */
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const PURPOSE = process.argv[2] === 'dev' ? 'dev' : 'test';
/** FERRETDB_VERSION in src/provision/ferretdb.ts. */
const FERRETDB_VERSION = 'v1.24.2';
/**
 * FERRETDB_BUILD there: the folder of the cached binary, which changes with every change to
 * the patches (test/setup-script.test.ts checks that the two agree).
 */
const FERRETDB_BUILD = 'v1.24.2-sc23';

function say(line) {
  process.stderr.write(`setup: ${line}\n`);
}

function fail(lines) {
  for (const l of [].concat(lines)) process.stderr.write(`setup: ${l}\n`);
  process.exit(1);
}

/** The absolute path of a command on PATH (or at one of `extra`), or undefined. */
function which(cmd, extra = []) {
  for (const dir of (process.env.PATH || '').split(path.delimiter).filter(Boolean)) {
    const p = path.join(dir, cmd);
    if (isExecutable(p)) return p;
  }
  return extra.find(isExecutable);
}

function isExecutable(p) {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: ROOT, stdio: 'inherit', ...opts });
  if (r.error) fail(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) fail(`${cmd} ${args.join(' ')} exited with ${r.status ?? r.signal}`);
}

function checkNode() {
  const major = Number(process.versions.node.split('.')[0]);
  if (major < 20) fail(`Node.js ${process.versions.node} is too old; install Node.js 20 (https://nodejs.org/en/download).`);
}

/**
 * The Debian packages missing for this purpose. The dev stack needs openssl (certificates)
 * and Redis; the tests also start nginx (proxy mode), use prlimit (the open-files
 * preflight check) and systemd-analyze (the units in deploy/).
 */
function missingPackages() {
  const need = [];
  if (!which('openssl')) need.push('openssl');
  if (!which('redis-server')) need.push('redis-server');
  if (PURPOSE === 'test') {
    if (!which('nginx', ['/usr/sbin/nginx'])) need.push('nginx-light');
    if (!which('prlimit', ['/usr/bin/prlimit'])) need.push('util-linux');
    // systemd's offline checks of the units in deploy/ (test/deploy-units.test.ts); nothing runs under it.
    if (!which('systemd-analyze', ['/usr/bin/systemd-analyze'])) need.push('systemd');
  }
  return need;
}

function installSystemPackages() {
  const need = missingPackages();
  if (need.length === 0) return;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!isRoot || !which('apt-get')) {
    fail([
      `missing system packages: ${need.join(' ')}. Install them, then run this command again:`,
      which('apt-get') ? `  sudo apt-get install -y --no-install-recommends ${need.join(' ')}` : `  (with your system's package manager) ${need.join(' ')}`,
    ]);
  }
  say(`installing ${need.join(' ')} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  // A fresh machine (or container) often has no package lists yet.
  run('apt-get', ['update', '-qq'], { env });
  run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...need], { env });
  const still = missingPackages();
  if (still.length > 0) fail(`apt-get ran, but these are still missing: ${still.join(' ')}`);
}

/** Without mongod the stack builds FerretDB once with Go; say so now rather than mid-test. */
function checkDatabaseServer() {
  if (which('mongod')) return;
  const cache = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  if (isExecutable(path.join(cache, 'stream-coordinator', 'ferretdb', FERRETDB_BUILD, 'ferretdb'))) return;
  if (which('go')) {
    say(`FerretDB ${FERRETDB_VERSION} (build ${FERRETDB_BUILD}) will be built with Go on first use (about 1–2 minutes, once)`);
    return;
  }
  fail([
    `no MongoDB server: mongod is not on PATH, and FerretDB ${FERRETDB_VERSION} (built once with Go) is not built yet.`,
    'Install Go ≥ 1.24 from https://go.dev/dl/ and put it on PATH (Debian 12\'s golang package is too old),',
    'or install MongoDB so that mongod is on PATH; then run this command again.',
  ]);
}

function mtime(file) {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
}

/** npm writes node_modules/.package-lock.json on every install: its age is the install's. */
function installDependencies() {
  const installed = mtime(path.join(ROOT, 'node_modules', '.package-lock.json'));
  const lock = mtime(path.join(ROOT, 'package-lock.json'));
  if (installed !== undefined && lock !== undefined && installed >= lock) return;
  say(installed === undefined ? 'installing npm dependencies (npm ci)' : 'package-lock.json changed: refreshing npm dependencies (npm ci)');
  npm(['ci', '--no-audit', '--no-fund']);
}

/** Runs the npm that runs us (npm sets npm_execpath), so PATH order does not matter. */
function npm(args) {
  const npmCli = process.env.npm_execpath;
  if (npmCli && /\.js$/.test(npmCli)) run(process.execPath, [npmCli, ...args]);
  else run('npm', args);
}

/** The package's own build script, so there is one definition of what a build is. */
function build() {
  npm(['run', 'build', '--silent']);
}

checkNode();
installSystemPackages();
checkDatabaseServer();
installDependencies();
build();
