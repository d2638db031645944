/**
 * The listener's TLS: which mode (PROTOCOL §1), the chain file uWS serves, and the
 * certificate checks preflight runs. uWS reads `cert_file_name` as a chain file, while its
 * `ca_file_name` would ask clients for certificates; so clients get leaf + intermediates
 * from one PEM built here (certificate followed by the CA chain) in a private temp file.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, type Settings } from '../config/settings';
import { DEFAULT_CIPHERS } from './tls-policy';

/** TLS off (behind a terminating proxy) or on with all three files. */
export type TlsMode =
  | { enabled: false }
  | { enabled: true; cert: string; key: string; ca: string; passphrase: string; ciphers?: string };

const KEYS = [
  ['cert', 'SC_TLS_CERT'],
  ['key', 'SC_TLS_KEY'],
  ['ca', 'SC_TLS_CA'],
] as const;

/**
 * Decides the mode. All three of tls.cert, tls.key and tls.ca set: TLS on; all empty: off;
 * anything else is a {@link ConfigError} naming what is missing.
 */
export function tlsMode(settings: Settings): TlsMode {
  const t = settings.tls;
  const set = KEYS.filter(([k]) => t[k].trim() !== '');
  if (set.length === 0) return { enabled: false };
  if (set.length === 3) return { enabled: true, cert: t.cert, key: t.key, ca: t.ca, passphrase: t.passphrase, ciphers: t.ciphers || DEFAULT_CIPHERS };
  const missing = KEYS.filter(([k]) => t[k].trim() === '').map(([k, env]) => `tls.${k} (env ${env})`);
  const present = set.map(([k]) => `tls.${k}`);
  throw new ConfigError(
    `TLS is partly configured: ${present.join(' and ')} ${present.length === 1 ? 'is' : 'are'} set but ${missing.join(' and ')} ${missing.length === 1 ? 'is' : 'are'} empty. ` +
      'Set all three (TLS on) or none (TLS off, only behind a TLS-terminating proxy).',
  );
}

/** One PEM file's certificates, leaf first. */
export function readCertificates(file: string): crypto.X509Certificate[] {
  const text = fs.readFileSync(file, 'utf8');
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new Error(`${file} holds no PEM certificate`);
  return blocks.map((b) => new crypto.X509Certificate(b));
}

/** The leaf certificate a server presents: its subject (one line) and the end of its validity. */
export interface ServedCertificate {
  subject: string;
  notAfter: Date;
}

/** Reads {@link ServedCertificate} from `tls.cert`. */
export function servedCertificate(mode: Extract<TlsMode, { enabled: true }>): ServedCertificate {
  const leaf = readCertificates(mode.cert)[0]!;
  return { subject: leaf.subject.replace(/\n/g, ', '), notAfter: new Date(leaf.validTo) };
}

/**
 * Writes certificate + chain into one PEM in a fresh private directory (0700, file 0600),
 * for uWS's `cert_file_name`. The caller removes it with the returned `remove()` once the
 * transport has read it (at start).
 */
export function buildChainFile(mode: Extract<TlsMode, { enabled: true }>): { file: string; remove(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stream-coordinator-tls-'));
  const file = path.join(dir, 'chain.pem');
  const leaf = fs.readFileSync(mode.cert, 'utf8').trim();
  const chain = fs.readFileSync(mode.ca, 'utf8').trim();
  fs.writeFileSync(file, `${leaf}\n${chain}\n`, { mode: 0o600 });
  return { file, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** The outcome of one check (shared with preflight). */
export interface CheckResult {
  name: string;
  ok: boolean;
  detail: string;
  /** How to fix it, when not ok. */
  fix?: string;
}

/**
 * Checks the configured certificate files: readable, key matches the certificate, the
 * certificate is within its validity period, and the chain links leaf → intermediates
 * (each signed by the next, each valid now).
 */
export function checkTlsFiles(mode: Extract<TlsMode, { enabled: true }>, now = new Date()): CheckResult[] {
  const results: CheckResult[] = [];
  let leaf: crypto.X509Certificate;
  let chain: crypto.X509Certificate[];
  try {
    leaf = readCertificates(mode.cert)[0]!;
    chain = readCertificates(mode.ca);
  } catch (err) {
    return [{ name: 'TLS certificate files', ok: false, detail: (err as Error).message, fix: 'Point tls.cert and tls.ca at readable PEM files.' }];
  }
  results.push({ name: 'TLS certificate files', ok: true, detail: `${mode.cert} (${leaf.subject.replace(/\n/g, ', ')}), chain of ${chain.length}` });

  try {
    const key = crypto.createPrivateKey({ key: fs.readFileSync(mode.key), passphrase: mode.passphrase || undefined });
    const ok = leaf.checkPrivateKey(key);
    results.push(
      ok
        ? { name: 'TLS key matches certificate', ok, detail: mode.key }
        : { name: 'TLS key matches certificate', ok, detail: `${mode.key} is not the key of ${mode.cert}`, fix: 'Set tls.key to the private key the certificate was issued for.' },
    );
  } catch (err) {
    results.push({
      name: 'TLS key matches certificate',
      ok: false,
      detail: `cannot read ${mode.key}: ${(err as Error).message}`,
      fix: 'Set tls.key to a readable PEM private key (and tls.passphrase if it is encrypted).',
    });
  }

  const from = new Date(leaf.validFrom);
  const to = new Date(leaf.validTo);
  if (now < from || now > to) {
    results.push({
      name: 'TLS certificate validity',
      ok: false,
      detail: now > to ? `expired on ${to.toISOString()}` : `not valid before ${from.toISOString()}`,
      fix: 'Renew the certificate and restart (or reload) the server.',
    });
  } else {
    const days = Math.floor((to.getTime() - now.getTime()) / 86_400_000);
    results.push({ name: 'TLS certificate validity', ok: true, detail: `valid until ${to.toISOString()} (${days} days)` });
  }

  results.push(checkChain(leaf, chain, now));
  return results;
}

function checkChain(leaf: crypto.X509Certificate, chain: crypto.X509Certificate[], now: Date): CheckResult {
  const name = 'TLS chain verifies';
  const fix = 'Set tls.ca to the issuing CA chain of the certificate (intermediates first, then optionally the root).';
  let current = leaf;
  const path: string[] = [cn(leaf)];
  const remaining = [...chain];
  for (;;) {
    if (current.verify(current.publicKey) && current.checkIssued(current)) break; // self-signed root reached
    const i = remaining.findIndex((c) => current.checkIssued(c) && current.verify(c.publicKey));
    if (i < 0) {
      if (current === leaf) return { name, ok: false, detail: `no certificate in ${'tls.ca'} issued ${cn(leaf)} (issuer: ${leaf.issuer.replace(/\n/g, ', ')})`, fix };
      // The chain ends at an intermediate whose root is expected in the clients' trust store.
      break;
    }
    const issuer = remaining.splice(i, 1)[0]!;
    if (!issuer.ca) return { name, ok: false, detail: `${cn(issuer)} is not a CA certificate`, fix };
    if (now > new Date(issuer.validTo) || now < new Date(issuer.validFrom)) {
      return { name, ok: false, detail: `${cn(issuer)} in the chain is not valid now (until ${new Date(issuer.validTo).toISOString()})`, fix };
    }
    path.push(cn(issuer));
    current = issuer;
  }
  return { name, ok: true, detail: path.join(' → ') };
}

function cn(c: crypto.X509Certificate): string {
  return /CN=([^\n,]+)/.exec(c.subject)?.[1] ?? c.subject.replace(/\n/g, ', ');
}
