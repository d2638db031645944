/**
 * Development certificates: a private root CA, an intermediate CA and a server leaf,
 * made with the `openssl` CLI. The intermediate is deliberate: it makes every server we
 * run (uWS, FerretDB, mongod) prove it serves the CA chain the way a production
 * certificate from a public CA needs, instead of passing only because the leaf happened
 * to be signed by the root.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { run, which, type LogFn } from './exec';

/** Paths of a development certificate set (all inside {@link DevCertificates.dir}). */
export interface DevCertificates {
  /** Directory holding the files (mode 0700). */
  dir: string;
  /** Root CA certificate (PEM): what clients trust, e.g. the driver's `tlsCAFile`. */
  caCert: string;
  /** Root CA private key (mode 0600). */
  caKey: string;
  /** Intermediate CA certificate (PEM), the leaf's issuer. */
  intermediateCert: string;
  /** Intermediate CA private key (mode 0600); with {@link intermediateCert}, the issuer for {@link createLeaf}. */
  intermediateKey: string;
  /** The CA chain file: intermediate PEM followed by root PEM. */
  chain: string;
  /** Server leaf certificate alone (PEM). */
  cert: string;
  /** Server leaf private key (PEM, mode 0600). */
  key: string;
  /** Leaf followed by the intermediate: what a server must present so clients trusting only the root can verify it. */
  fullChain: string;
}

/** Options of {@link ensureDevCertificates} and {@link generateCertificates}. */
export interface CertificateOptions {
  /** Extra names for the leaf's subjectAltName (IP literals become IP entries, others DNS). */
  hosts?: string[];
  log?: LogFn;
}

/** An issuing CA: certificate and key paths. */
export interface Issuer {
  /** CA certificate (PEM path). */
  cert: string;
  /** CA private key (PEM path). */
  key: string;
}

/** Options of {@link createLeaf}. */
export interface LeafOptions {
  /** Base file name: writes `<name>.pem` and `<name>.key` in the target directory. */
  name: string;
  /** Validity length in days (default and maximum 825, the CA/Browser Forum ceiling clients still enforce). */
  days?: number;
  /** Start the validity this many days in the past; with a small `days`, gives an expired certificate. */
  startDaysAgo?: number;
  /** Extra subjectAltName entries, as for {@link CertificateOptions.hosts}. */
  hosts?: string[];
  /** Subject common name (default: `name`). */
  commonName?: string;
}

const DAY_MS = 86_400_000;
const ROOT_DAYS = 3650;
const INTERMEDIATE_DAYS = 1825;
const LEAF_MAX_DAYS = 825;
/** Reuse only what stays valid at least this long, so a dev stack never starts on the edge of expiry. */
const MIN_REMAINING_MS = 7 * DAY_MS;
/** Backdating absorbs small clock differences between machines and containers. */
const BACKDATE_MS = 60 * 60 * 1000;

const FILES = {
  caCert: 'ca.pem',
  caKey: 'ca.key',
  intermediateCert: 'intermediate.pem',
  intermediateKey: 'intermediate.key',
  chain: 'chain.pem',
  cert: 'server.pem',
  key: 'server.key',
  fullChain: 'server-fullchain.pem',
} as const;

function pathsIn(dir: string): DevCertificates {
  const abs = path.resolve(dir);
  const out = { dir: abs } as DevCertificates;
  for (const [k, f] of Object.entries(FILES)) (out as unknown as Record<string, string>)[k] = path.join(abs, f);
  return out;
}

function openssl(): string {
  const bin = which('openssl');
  if (!bin) throw new Error('openssl not found on PATH; install it (Debian/Ubuntu: apt-get install openssl)');
  return bin;
}

/** Default SAN entries plus the caller's, deduplicated, in openssl's `TYPE:value` form. */
function sanEntries(hosts: readonly string[] = []): string[] {
  const all = ['localhost', '127.0.0.1', '::1', ...hosts];
  const seen = new Set<string>();
  const out: string[] = [];
  for (const h of all) {
    const entry = net.isIP(h) ? `IP:${h}` : `DNS:${h}`;
    if (!seen.has(entry.toLowerCase())) {
      seen.add(entry.toLowerCase());
      out.push(entry);
    }
  }
  return out;
}

/** openssl ca accepts GeneralizedTime strings (YYYYMMDDHHMMSSZ) for -startdate/-enddate. */
function opensslTime(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:T]/g, '').replace(/\.\d+Z$/, 'Z');
}

async function genKey(file: string): Promise<void> {
  await run(openssl(), ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file]);
  await fsp.chmod(file, 0o600);
}

/** A request config that keeps openssl away from the system openssl.cnf and its prompts. */
function reqConfig(commonName: string): string {
  // Quote-free values: openssl config values end at newline, so strip anything that would break the file.
  const cn = commonName.replace(/[\r\n]/g, ' ');
  return `[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = ${cn}\n`;
}

/**
 * Signs a CSR with `openssl ca`, the one openssl 3.0 command that takes explicit start and
 * end dates (`x509 -req` only has -days from now), so the same path makes valid and
 * already-expired certificates.
 */
async function signCsr(
  work: string,
  csr: string,
  issuer: Issuer,
  out: string,
  extensions: string,
  startMs: number,
  endMs: number,
): Promise<void> {
  const db = path.join(work, 'ca-db');
  await fsp.mkdir(db, { recursive: true, mode: 0o700 });
  await fsp.writeFile(path.join(db, 'index.txt'), '');
  const cnf = path.join(work, 'ca.cnf');
  await fsp.writeFile(
    cnf,
    [
      '[ca]',
      'default_ca = dev',
      '[dev]',
      `database = ${path.join(db, 'index.txt')}`,
      `new_certs_dir = ${db}`,
      `serial = ${path.join(db, 'serial')}`,
      'rand_serial = yes',
      'default_md = sha256',
      'policy = any',
      'copy_extensions = none',
      'unique_subject = no',
      '[any]',
      'commonName = supplied',
      '[ext]',
      extensions,
      '',
    ].join('\n'),
  );
  await run(openssl(), [
    'ca', '-batch', '-notext', '-config', cnf, '-extensions', 'ext',
    '-cert', issuer.cert, '-keyfile', issuer.key, '-in', csr, '-out', out,
    '-startdate', opensslTime(startMs), '-enddate', opensslTime(endMs),
  ]);
}

async function makeCsr(work: string, keyFile: string, commonName: string, csr: string): Promise<void> {
  const cnf = path.join(work, 'req.cnf');
  await fsp.writeFile(cnf, reqConfig(commonName));
  await run(openssl(), ['req', '-new', '-config', cnf, '-key', keyFile, '-out', csr]);
}

async function makeRoot(work: string, keyFile: string, certFile: string): Promise<void> {
  await genKey(keyFile);
  const cnf = path.join(work, 'root.cnf');
  await fsp.writeFile(
    cnf,
    reqConfig('stream-coordinator dev root CA') +
      '[v3_root]\nbasicConstraints = critical,CA:true\nkeyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n',
  );
  await run(openssl(), [
    'req', '-x509', '-new', '-config', cnf, '-extensions', 'v3_root', '-key', keyFile,
    '-sha256', '-days', String(ROOT_DAYS), '-out', certFile,
  ]);
}

async function makeIntermediate(work: string, root: Issuer, keyFile: string, certFile: string): Promise<void> {
  await genKey(keyFile);
  const csr = path.join(work, 'intermediate.csr');
  await makeCsr(work, keyFile, 'stream-coordinator dev intermediate CA', csr);
  const start = Date.now() - BACKDATE_MS;
  await signCsr(
    work,
    csr,
    root,
    certFile,
    [
      'basicConstraints = critical,CA:true,pathlen:0',
      'keyUsage = critical,keyCertSign,cRLSign',
      'subjectKeyIdentifier = hash',
      'authorityKeyIdentifier = keyid:always',
    ].join('\n'),
    start,
    start + INTERMEDIATE_DAYS * DAY_MS,
  );
}

/**
 * Issues a server certificate (serverAuth, SAN localhost/127.0.0.1/::1 plus `opts.hosts`)
 * signed by `issuer`, writing `<dir>/<name>.pem` and `<dir>/<name>.key` (mode 0600).
 *
 * Tests use it to make an expired certificate: `{ name: 'expired', startDaysAgo: 30, days: 1 }`.
 *
 * @returns the written certificate and key paths.
 */
export async function createLeaf(dir: string, issuer: Issuer, opts: LeafOptions): Promise<{ cert: string; key: string }> {
  if (!/^[\w.-]+$/.test(opts.name)) throw new Error(`createLeaf: name must be a plain file name, got ${JSON.stringify(opts.name)}`);
  const days = opts.days ?? LEAF_MAX_DAYS;
  if (!(days > 0 && days <= LEAF_MAX_DAYS)) throw new Error(`createLeaf: days must be in (0, ${LEAF_MAX_DAYS}], got ${days}`);
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  const work = await fsp.mkdtemp(path.join(dir, `.work-${opts.name}-`));
  try {
    const key = path.join(work, 'leaf.key');
    const csr = path.join(work, 'leaf.csr');
    const cert = path.join(work, 'leaf.pem');
    await genKey(key);
    await makeCsr(work, key, opts.commonName ?? opts.name, csr);
    const start = opts.startDaysAgo !== undefined ? Date.now() - opts.startDaysAgo * DAY_MS : Date.now() - BACKDATE_MS;
    await signCsr(
      work,
      csr,
      issuer,
      cert,
      [
        'basicConstraints = critical,CA:false',
        // digitalSignature is the usage an ECDSA key needs for TLS; keyEncipherment is RSA-only.
        'keyUsage = critical,digitalSignature',
        'extendedKeyUsage = serverAuth',
        `subjectAltName = ${sanEntries(opts.hosts).join(',')}`,
        'subjectKeyIdentifier = hash',
        'authorityKeyIdentifier = keyid:always',
      ].join('\n'),
      start,
      start + days * DAY_MS,
    );
    const out = { cert: path.join(dir, `${opts.name}.pem`), key: path.join(dir, `${opts.name}.key`) };
    await fsp.rename(key, out.key);
    await fsp.rename(cert, out.cert);
    return out;
  } finally {
    await fsp.rm(work, { recursive: true, force: true });
  }
}

/** Writes a file via a temporary sibling and rename, so readers never see half a file. */
async function writeAtomic(file: string, data: string, mode: number): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  await fsp.writeFile(tmp, data, { mode });
  await fsp.chmod(tmp, mode);
  await fsp.rename(tmp, file);
}

async function writeBundles(p: DevCertificates): Promise<void> {
  const [root, inter, leaf] = await Promise.all([p.caCert, p.intermediateCert, p.cert].map((f) => fsp.readFile(f, 'utf8')));
  await writeAtomic(p.chain, ensureNewline(inter!) + ensureNewline(root!), 0o644);
  await writeAtomic(p.fullChain, ensureNewline(leaf!) + ensureNewline(inter!), 0o644);
}

function ensureNewline(s: string): string {
  return s.endsWith('\n') ? s : `${s}\n`;
}

async function prepareDir(dir: string): Promise<void> {
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  // mkdir's mode does not apply to an existing directory, and umask may narrow it anyway.
  await fsp.chmod(dir, 0o700);
}

/** Issues the server leaf under the existing intermediate and moves it into place. */
async function issueServerLeaf(p: DevCertificates, hosts: readonly string[] | undefined): Promise<void> {
  const tmpName = `server-new-${process.pid}`;
  const out = await createLeaf(p.dir, { cert: p.intermediateCert, key: p.intermediateKey }, {
    name: tmpName,
    hosts: [...(hosts ?? [])],
    commonName: 'localhost',
  });
  await fsp.rename(out.key, p.key);
  await fsp.rename(out.cert, p.cert);
  await writeBundles(p);
}

/**
 * Always creates a fresh certificate set in `dir` (root, intermediate, leaf, chain files),
 * replacing any existing one. Tests use it in temporary directories.
 */
export async function generateCertificates(dir: string, opts: CertificateOptions = {}): Promise<DevCertificates> {
  const p = pathsIn(dir);
  await prepareDir(p.dir);
  opts.log?.(`Generating development CA, intermediate and server certificate in ${p.dir}`);
  const work = await fsp.mkdtemp(path.join(p.dir, '.work-ca-'));
  try {
    const root: Issuer = { cert: path.join(work, FILES.caCert), key: path.join(work, FILES.caKey) };
    await makeRoot(work, root.key, root.cert);
    const inter: Issuer = { cert: path.join(work, FILES.intermediateCert), key: path.join(work, FILES.intermediateKey) };
    await makeIntermediate(work, root, inter.key, inter.cert);
    // Authorities move into place only once both exist, so a crash never leaves a root without its intermediate.
    await fsp.rename(root.key, p.caKey);
    await fsp.rename(root.cert, p.caCert);
    await fsp.rename(inter.key, p.intermediateKey);
    await fsp.rename(inter.cert, p.intermediateCert);
  } finally {
    await fsp.rm(work, { recursive: true, force: true });
  }
  await issueServerLeaf(p, opts.hosts);
  return p;
}

function readCert(file: string): X509Certificate {
  return new X509Certificate(fs.readFileSync(file));
}

function readKey(file: string): KeyObject {
  return createPrivateKey(fs.readFileSync(file));
}

function validFor(cert: X509Certificate, now: number): boolean {
  return Date.parse(cert.validFrom) <= now && Date.parse(cert.validTo) - now >= MIN_REMAINING_MS;
}

function splitPem(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/** Why the CA pair in `p` cannot be reused, or null when it can. */
function authorityProblem(p: DevCertificates, now: number): string | null {
  try {
    const root = readCert(p.caCert);
    const inter = readCert(p.intermediateCert);
    if (!root.checkPrivateKey(readKey(p.caKey))) return 'root CA key does not match its certificate';
    if (!inter.checkPrivateKey(readKey(p.intermediateKey))) return 'intermediate CA key does not match its certificate';
    if (!root.verify(root.publicKey)) return 'root CA is not self-signed';
    if (!inter.verify(root.publicKey)) return 'intermediate CA is not signed by the root';
    if (!validFor(root, now)) return 'root CA expires within 7 days';
    if (!validFor(inter, now)) return 'intermediate CA expires within 7 days';
    return null;
  } catch (e) {
    return `CA files missing or unreadable (${(e as Error).message})`;
  }
}

/** Why the leaf and bundles in `p` cannot be reused, or null when they can. */
function leafProblem(p: DevCertificates, hosts: readonly string[], now: number): string | null {
  try {
    const inter = readCert(p.intermediateCert);
    const leaf = readCert(p.cert);
    if (!leaf.checkPrivateKey(readKey(p.key))) return 'server key does not match its certificate';
    if (!leaf.verify(inter.publicKey)) return 'server certificate is not signed by the intermediate';
    if (!validFor(leaf, now)) return 'server certificate expires within 7 days';
    for (const h of ['localhost', '127.0.0.1', '::1', ...hosts]) {
      const covered = net.isIP(h) ? leaf.checkIP(h) !== undefined : leaf.checkHost(h, { wildcards: false }) !== undefined;
      if (!covered) return `server certificate does not cover ${h}`;
    }
    const chain = splitPem(fs.readFileSync(p.chain, 'utf8'));
    const full = splitPem(fs.readFileSync(p.fullChain, 'utf8'));
    const rootPem = splitPem(fs.readFileSync(p.caCert, 'utf8'))[0];
    const interPem = splitPem(fs.readFileSync(p.intermediateCert, 'utf8'))[0];
    const leafPem = splitPem(fs.readFileSync(p.cert, 'utf8'))[0];
    if (chain.length !== 2 || chain[0] !== interPem || chain[1] !== rootPem) return 'chain file is stale';
    if (full.length !== 2 || full[0] !== leafPem || full[1] !== interPem) return 'full-chain file is stale';
    return null;
  } catch (e) {
    return `server certificate files missing or unreadable (${(e as Error).message})`;
  }
}

/**
 * Returns a usable development certificate set in `dir`, creating or repairing it as
 * needed: files that parse, match their keys, chain correctly, cover the requested hosts
 * and stay valid for 7 more days are reused. A stale leaf is reissued under the existing
 * CA (so a root the developer already trusts keeps working); a bad CA means a new set.
 */
export async function ensureDevCertificates(dir: string, opts: CertificateOptions = {}): Promise<DevCertificates> {
  const p = pathsIn(dir);
  const now = Date.now();
  const hosts = opts.hosts ?? [];
  const caIssue = authorityProblem(p, now);
  if (caIssue) {
    if (fs.existsSync(p.caCert)) opts.log?.(`Replacing development certificates: ${caIssue}`);
    return generateCertificates(dir, opts);
  }
  await prepareDir(p.dir);
  const leafIssue = leafProblem(p, hosts, now);
  if (leafIssue) {
    opts.log?.(`Reissuing the development server certificate: ${leafIssue}`);
    await issueServerLeaf(p, hosts);
  }
  // Modes may have been loosened by hand or by a copy; keys must stay private.
  await Promise.all([p.caKey, p.intermediateKey, p.key].map((f) => fsp.chmod(f, 0o600)));
  return p;
}
