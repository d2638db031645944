/**
 * The listener's TLS policy, the same on both transports: TLS 1.2 or newer, and for TLS 1.2
 * only forward-secret AEAD suites (ECDHE with AES-GCM or ChaCha20-Poly1305, Mozilla's
 * "intermediate" list without DHE). TLS 1.3 suites are all AEAD and kept at OpenSSL's
 * defaults. `tls.ciphers` may replace the list (OpenSSL syntax; include the TLS_* 1.3
 * names, or node:https would turn TLS 1.3 off).
 */
import net from 'node:net';

/** The default `tls.ciphers`. */
export const DEFAULT_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/** The oldest protocol accepted. */
export const MIN_TLS_VERSION = 'TLSv1.2' as const;

/** Whether a listen host only accepts connections from this machine. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  return net.isIPv4(h) && h.startsWith('127.');
}

/**
 * Who can reach a listener that speaks plain HTTP: only this machine (`loopback`); other
 * machines, but through the TLS-terminating proxies on other machines named in
 * server.trustProxy, which must be the only way in (`behind-proxy`); or anyone, so bearer
 * tokens and engine keys would cross the network in clear (`exposed`). Proxies named only on
 * this machine do not make a listener on other addresses `behind-proxy`: it should listen on
 * loopback. Preflight refuses to start an exposed listener, and the server warns at start-up
 * about both kinds that are not loopback.
 */
export type PlaintextExposure = 'loopback' | 'behind-proxy' | 'exposed';

/** {@link PlaintextExposure} of a plain-HTTP listener on `host` with these trusted proxies. */
export function plaintextExposure(host: string, trustProxy: readonly string[]): PlaintextExposure {
  if (isLoopbackHost(host)) return 'loopback';
  // An entry is an address or a CIDR range (config format ip-list).
  return trustProxy.some((p) => !isLoopbackHost(p.split('/')[0]!)) ? 'behind-proxy' : 'exposed';
}

/**
 * The warning to log at start-up when the listener speaks plain HTTP on an address other
 * machines can reach, or undefined when there is nothing to warn about (TLS on, or loopback).
 */
export function plaintextWarning(tlsEnabled: boolean, host: string, trustProxy: readonly string[] = []): string | undefined {
  const exposure = tlsEnabled ? 'loopback' : plaintextExposure(host, trustProxy);
  if (exposure === 'loopback') return undefined;
  if (exposure === 'behind-proxy') return `TLS is off and the listener is on ${host}: only the TLS-terminating proxies of server.trustProxy (${trustProxy.join(', ')}) may reach it, since tokens and engine keys travel in clear between them and this node.`;
  return `TLS IS OFF and the listener is on ${host}, reachable from other machines: tokens and engine keys travel in clear unless a TLS-terminating proxy is the only way in. Set tls.cert, tls.key and tls.ca, or listen on 127.0.0.1 behind the proxy.`;
}
