/**
 * A local `mongod` (preferred over FerretDB when installed), TLS-only like production.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { freePort, hostPort, spawnService, waitForPort, which, type LogFn } from './exec';
import type { MongoService } from './ferretdb';

export type { MongoService } from './ferretdb';

/** Options of {@link startMongod}. */
export interface StartMongodOptions {
  /** Database directory (`--dbpath`, created). */
  dataDir: string;
  /** TLS port (default: a free one). */
  port?: number;
  /** Bind address (default 127.0.0.1). */
  host?: string;
  /** One PEM holding the server certificate, its intermediates and its private key (`--tlsCertificateKeyFile`). */
  certKeyPem: string;
  /** CA file (`--tlsCAFile`): used to build the served chain and to check client certificates, which are optional. */
  caFile: string;
  /** Binary to run (default: `mongod` from PATH). */
  binary?: string;
  /** Start-up timeout (default 60 s: a first start preallocates journal files). */
  startTimeoutMs?: number;
  log?: LogFn;
}

/** The path of `mongod` on PATH, or null. */
export function findMongod(): string | null {
  return which('mongod');
}

/**
 * Starts `mongod` with `--tlsMode requireTLS` (plaintext clients are refused) and
 * client certificates optional, and waits until it accepts connections.
 *
 * @returns a handle with `uri` = `mongodb://host:port/?tls=true`.
 * @throws Error when mongod is not on PATH or does not come up.
 */
export async function startMongod(opts: StartMongodOptions): Promise<MongoService> {
  const bin = opts.binary ?? findMongod();
  if (!bin) throw new Error('mongod not found on PATH');
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? (await freePort(host));
  const dataDir = path.resolve(opts.dataDir);
  await fsp.mkdir(dataDir, { recursive: true, mode: 0o700 });
  const args = [
    '--tlsMode', 'requireTLS',
    '--tlsCertificateKeyFile', path.resolve(opts.certKeyPem),
    '--tlsCAFile', path.resolve(opts.caFile),
    '--tlsAllowConnectionsWithoutCertificates',
    '--bind_ip', host,
    ...(host.includes(':') ? ['--ipv6'] : []),
    '--port', String(port),
    '--dbpath', dataDir,
    // The default socket /tmp/mongodb-<port>.sock would collide between stacks and outlive a crash.
    '--nounixsocket',
    '--quiet',
  ];
  const timeoutMs = opts.startTimeoutMs ?? 60_000;
  const svc = await spawnService({
    name: 'mongod',
    cmd: bin,
    args,
    cwd: dataDir,
    host,
    port,
    url: `mongodb://${hostPort(host, port)}/?tls=true`,
    ready: (signal) => waitForPort(host, port, timeoutMs, { signal }),
    startTimeoutMs: timeoutMs,
    log: opts.log,
  });
  return { ...svc, uri: svc.url };
}
