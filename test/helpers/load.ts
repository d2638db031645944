/**
 * Core load for failover tests: cores that assign, send a frame, checkpoint and stop in a
 * loop, recording what the failover tests assert — streams held by two cores at once,
 * acknowledged commits per stream, `unavailable` errors and the longest time a core went
 * without a successful round.
 */
import { CoreError, type CoreClient } from '../../src/client';

/** What a {@link CoreLoad} saw. */
export interface LoadReport {
  /** Assignments of a stream another core of this load still held. */
  doubles: number;
  commits: number;
  unavailable: number;
  /** Longest stretch (ms) from a core's first failure to its next successful round. */
  longestOutageMs: number;
  /** Highest acknowledged committed frames per stream. */
  acked: Map<string, number>;
  /** Failed rounds by error code (or message), for diagnosis. */
  errors: Map<string, number>;
}

/** A running load; {@link CoreLoad.stop} ends it and returns the report. */
export interface CoreLoad {
  readonly report: LoadReport;
  /** Ends the load (idempotent); resolves once every core has closed. */
  stop(): Promise<LoadReport>;
  /** One line for test output. */
  summary(): string;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Starts `cores` cores, each made by `connect(i)` (which picks its node; give the clients a
 * request timeout well under the test's, so a stuck request fails the round instead of the test).
 */
export function startCoreLoad(cores: number, connect: (i: number) => Promise<CoreClient>): CoreLoad {
  const report: LoadReport = { doubles: 0, commits: 0, unavailable: 0, longestOutageMs: 0, acked: new Map(), errors: new Map() };
  const holders = new Map<string, number>();
  let running = true;
  const worker = async (i: number): Promise<void> => {
    let c = await connect(i);
    let failingSince = 0;
    while (running) {
      let stream: string | undefined;
      try {
        const a = await c.assign();
        stream = a.streamId;
        if (holders.has(stream)) report.doubles++;
        holders.set(stream, i);
        await c.sendFrames([{ name: 'frames.xtc', data: Buffer.from([i]) }]);
        const done = await c.checkpoint([]);
        report.commits++;
        report.acked.set(stream, Math.max(report.acked.get(stream) ?? 0, done.frames));
        // Before the stop: once the server requeues the stream another core may rightly take it.
        holders.delete(stream);
        await c.stop();
        if (failingSince) report.longestOutageMs = Math.max(report.longestOutageMs, Date.now() - failingSince);
        failingSince = 0;
      } catch (e) {
        if (e instanceof CoreError && e.code === 'no_streams_available') {
          await sleep(50);
          continue;
        }
        if (e instanceof CoreError && e.code === 'unavailable') report.unavailable++;
        const what = e instanceof CoreError ? e.code : String((e as Error)?.message ?? e);
        report.errors.set(what, (report.errors.get(what) ?? 0) + 1);
        failingSince ||= Date.now();
        if (stream) holders.delete(stream);
        // Start over on a fresh connection: what this one held goes back by the lease rules.
        await c.close().catch(() => undefined);
        await sleep(200);
        c = await connect(i).catch(() => c);
      }
    }
    await c.close().catch(() => undefined);
  };
  const workers = Array.from({ length: cores }, (_, i) => worker(i));
  return {
    report,
    async stop() {
      running = false;
      await Promise.all(workers);
      return report;
    },
    summary: () =>
      `${report.commits} commits, ${report.unavailable} unavailable, longest outage ${report.longestOutageMs} ms, errors ${JSON.stringify(Object.fromEntries(report.errors))}`,
  };
}
