/** What every benchmark gets from the orchestrator, and helpers they share. */
import path from 'node:path';
import { createCoreFixture, createStreamsViaApi, prepareDatabase, resetQueues, type CoreFixture } from './fixtures';
import { insertStreams } from './populate';
import type { LoadGenKind } from './loadgen-pool';
import type { ModeSettings } from './modes';
import { startServer, type BenchServer, type ServerOptions, type TransportName } from './server';
import type { BenchStack } from './stack';

/** The orchestrator's context. */
export interface BenchContext {
  stack: BenchStack;
  mode: 'quick' | 'full';
  settings: ModeSettings;
  /** The transports the sessions benchmark runs (default: both). */
  sessionTransports?: TransportName[];
  /** The load generator of the sessions benchmark and its Centrifugo peer (default: go). */
  sessionsLoadGen?: LoadGenKind;
  /** Scratch directory (inside the stack's temporary directory). */
  workDir: string;
  /** When set, servers run with --cpu-prof writing here, and are stopped gracefully. */
  cpuProfDir?: string;
  log(line: string): void;
  /** The shared population of ready streams for the sessions and set-up benchmarks. */
  population(): Promise<Population>;
}

/** A database with many ready streams of one public target. */
export interface Population {
  fixture: CoreFixture;
  streams: number;
  storeFix: string;
}

export const TRANSPORTS: TransportName[] = ['uws', 'node'];

/** Starts a server for a benchmark with the context's profiling settings. */
export function benchServer(ctx: BenchContext, o: Omit<ServerOptions, 'stack' | 'dir' | 'cpuProfDir'> & { tag: string }): Promise<BenchServer> {
  return startServer({ ...o, stack: ctx.stack, dir: path.join(ctx.workDir, o.tag), ...(ctx.cpuProfDir ? { cpuProfDir: path.join(ctx.cpuProfDir, o.tag) } : {}) });
}

/** Stops a server: gracefully when profiling (profiles are written at exit), else at once. */
export async function stopServer(ctx: BenchContext, s: BenchServer | undefined): Promise<void> {
  if (!s) return;
  await s.stop(ctx.cpuProfDir ? 'graceful' : 'kill');
}

/**
 * A fresh database for one run: indexes, an admin, and a manager/engine key/public target
 * made through the API of a short-lived set-up server. The store is exactly what dev and
 * tests run (no bench-only correction); `storeFix` says which store that is.
 */
export async function freshDatabase(ctx: BenchContext, database: string): Promise<{ admin: string; storeFix: string }> {
  const admin = await prepareDatabase(ctx.stack, database);
  const storeFix = ctx.stack.stack.mongoKind === 'ferretdb' ? 'FerretDB as provisioned (patched SQLite build)' : 'mongod';
  return { admin, storeFix };
}

/** Builds the shared population: `count` new streams with the recipe's seed files (fixtures.ts RECIPE), inserted in bulk. */
export async function buildPopulation(ctx: BenchContext, database: string, count: number): Promise<Population> {
  const started = Date.now();
  const { admin, storeFix } = await freshDatabase(ctx, database);
  const setup = await benchServer(ctx, { tag: 'population-setup', transport: 'uws', workers: 1, database, adminToken: admin });
  let fixture: CoreFixture;
  try {
    fixture = await createCoreFixture(setup.url, ctx.stack.caPem, database, admin);
  } finally {
    await setup.stop('kill');
  }
  await insertStreams(ctx.stack.db(database), fixture, 'bench-manager', count);
  ctx.log(`population: ${count} streams in ${database} (${((Date.now() - started) / 1000).toFixed(1)} s; store: ${storeFix})`);
  return { fixture, streams: count, storeFix };
}

/**
 * One server process on a fresh database with `streams` streams created through the API
 * (the recipe's seed files: fixtures.ts RECIPE); runs `work` with it, always stops the
 * server, then drops the database.
 */
export async function withStreamsServer<T>(
  ctx: BenchContext,
  o: { tag: string; transport: TransportName; overrides: Record<string, unknown>; streams: number },
  work: (server: BenchServer, fx: CoreFixture) => Promise<T>,
): Promise<T> {
  const database = `bench_${o.tag.replace(/-/g, '_')}`;
  const { admin } = await freshDatabase(ctx, database);
  await resetQueues(ctx.stack, ctx.stack.db(database));
  let server: BenchServer | undefined;
  try {
    server = await benchServer(ctx, { tag: o.tag, transport: o.transport, workers: 1, database, adminToken: admin, overrides: o.overrides });
    const fx = await createCoreFixture(server.url, ctx.stack.caPem, database, admin);
    await createStreamsViaApi(server.url, ctx.stack.caPem, fx, o.streams);
    return await work(server, fx);
  } finally {
    await stopServer(ctx, server);
    // What the phase wrote is measured already: drop it, or a full run outgrows the disk
    // (the commits phase alone filled 38 GB before this).
    await ctx.stack.db(database).dropDatabase().catch(() => undefined);
  }
}
