/**
 * MongoDB through the official driver, TLS only. The driver reconnects on its own; while
 * MongoDB is down operations fail after `mongodb.serverSelectionTimeoutMs` and /readyz says so.
 */
import { withTimeout } from './outage';
import { MongoClient, type Db, type ReadPreferenceMode } from 'mongodb';
import { ConfigError, type Settings } from '../config/settings';

/**
 * Refuses a connection string that would talk to MongoDB in plaintext. `mongodb+srv://`
 * turns TLS on by default; `mongodb://` needs `tls=true` (or the older `ssl=true`).
 */
export function assertTlsUri(uri: string): void {
  const m = /^(mongodb(?:\+srv)?):\/\/[^?]*(?:\?(.*))?$/i.exec(uri.trim());
  if (!m) throw new ConfigError('mongodb.uri (env SC_MONGODB_URI): not a MongoDB connection string; expected mongodb://host:port/?tls=true or mongodb+srv://host/');
  const srv = m[1]!.toLowerCase() === 'mongodb+srv';
  const params = new URLSearchParams(m[2] ?? '');
  let tls: string | undefined;
  for (const [k, v] of params) if (k.toLowerCase() === 'tls' || k.toLowerCase() === 'ssl') tls = v.toLowerCase();
  if (tls === 'true' || (srv && tls === undefined)) return;
  throw new ConfigError(
    'mongodb.uri (env SC_MONGODB_URI): the connection is not encrypted. stream-coordinator only talks to MongoDB over TLS: ' +
      "add 'tls=true' to the URI's options (e.g. mongodb://db.example:27017/?tls=true), set mongodb.tlsCAFile if the server's certificate " +
      'comes from a private CA, and enable TLS on the server (net.tls.mode: requireTLS).',
  );
}

/** A connected-on-demand MongoDB client and its database. */
export interface Mongo {
  client: MongoClient;
  /** Reads follow mongodb.readPreference. */
  db: Db;
  /**
   * The same database, read from the primary whatever mongodb.readPreference says: for reads
   * that decide what to delete (the janitor), where a lagging secondary's answer would make a
   * committed partition look abandoned.
   */
  primary: Db;
}

/** Creates the client (no I/O yet; the first operation, or `client.connect()`, connects). */
export function createMongo(settings: Settings): Mongo {
  const s = settings.mongodb;
  assertTlsUri(s.uri);
  const client = new MongoClient(s.uri, {
    tls: true,
    ...(s.tlsCAFile ? { tlsCAFile: s.tlsCAFile } : {}),
    ...(s.tlsCertificateKeyFile ? { tlsCertificateKeyFile: s.tlsCertificateKeyFile } : {}),
    ...(s.tlsCertificateKeyFilePassword ? { tlsCertificateKeyFilePassword: s.tlsCertificateKeyFilePassword } : {}),
    serverSelectionTimeoutMS: s.serverSelectionTimeoutMs,
    connectTimeoutMS: s.serverSelectionTimeoutMs,
    maxPoolSize: s.maxPoolSize,
    readPreference: s.readPreference as ReadPreferenceMode,
    retryWrites: s.retryWrites,
    appName: 'stream-coordinator',
  });
  return { client, db: client.db(s.database), primary: client.db(s.database, { readPreference: 'primary' }) };
}

/** Round trip to MongoDB; rejects when it does not answer within `timeoutMs`. */
export async function pingMongo(mongo: Mongo, timeoutMs: number): Promise<void> {
  await withTimeout(mongo.db.command({ ping: 1 }, { timeoutMS: timeoutMs }), timeoutMs, 'mongodb');
}
