/**
 * `stream-coordinator simulate`: N simulated cores doing real work against a server — each
 * assigns, sends frames of a chosen size, checkpoints every k frames, sometimes reports an
 * error — with a live one-line progress display and a summary at the end.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { CoreClient, CoreError } from '../client';

/**
 * Seconds to wait before sending a refused message again, or undefined when it is not to be
 * sent again. The server kept nothing of a refused message and did not take its seq; the
 * store being down (`unavailable`) keeps the frames buffered, so the checkpoint sent again
 * commits them. A `buffer_full` without a delay means this core's own buffer is full: sending
 * the same frame again would never pass, so that is an error, as are all other codes.
 */
function sendAgainAfterS(err: unknown): number | undefined {
  if (!(err instanceof CoreError)) return undefined;
  if (err.code === 'rate_limited') return err.retryAfterS ?? 1;
  if (err.code === 'unavailable' || err.code === 'buffer_full') return err.retryAfterS;
  return undefined;
}

/** Thrown to end a core whose message was refused as the run ended. */
const RUN_OVER = new Error('the run is over');

/** Options of {@link simulate}. */
export interface SimulateOptions {
  url: string;
  engineKey: string;
  donorToken?: string;
  /** PEM file of a CA to trust (e.g. certs/dev/ca.pem). */
  caFile?: string;
  cores: number;
  /** Bytes per frame message. Default 4096. */
  frameBytes: number;
  /** Frames between checkpoints. Default 10. */
  checkpointEvery: number;
  /** Probability that an assignment ends with a reported error instead of a normal stop. Default 0. */
  errorRate: number;
  /** Checkpoints per assignment before stopping and asking for another. Default 5. */
  checkpointsPerAssignment: number;
  /** Seconds to run; 0 runs until Ctrl-C. */
  durationS: number;
  /**
   * Most messages per second each core sends; 0 sends as fast as replies come. Default 100, half
   * the server's default `core.messagesPerSecond`. A message the server refuses for now
   * (`rate_limited`, `unavailable`, and `buffer_full` with a delay: the node's spill space,
   * after checkpointing what the core buffered) is sent again after the delay it names.
   */
  ratePerS: number;
  targetId?: string;
  /** Where the progress line and summary go. */
  out: NodeJS.WriteStream;
}

interface Counters {
  sessions: number;
  assignments: number;
  /**
   * Frames sent and not lost: those buffered when the socket dropped or the server took the
   * stream back were discarded by the server (the core sends new ones), so they are taken off
   * again. At the end of a run this is what the streams committed.
   */
  frames: number;
  commits: number;
  errors: number;
  bytes: number;
  waits: number;
  /** Messages the server refused for now (rate_limited, unavailable, buffer_full with a delay), each sent again after its retry_after_s. */
  refused: number;
  /** Assignments the server took back (a manager stopped or deleted the stream); the core asks for another. */
  takenBack: number;
  /** Times the client reconnected after its socket dropped (a node restarting or draining, a network cut): it resumed its stream and the core went on. */
  reconnects: number;
  commitMs: number[];
}

/** Runs the simulation until the duration ends or SIGINT; resolves with the counters. */
export async function simulate(o: SimulateOptions): Promise<Counters> {
  const ca = o.caFile ? fs.readFileSync(o.caFile) : undefined;
  const c: Counters = { sessions: 0, assignments: 0, frames: 0, commits: 0, errors: 0, bytes: 0, waits: 0, refused: 0, takenBack: 0, reconnects: 0, commitMs: [] };
  let running = true;
  let stopped!: () => void;
  const whenStopped = new Promise<void>((resolve) => (stopped = resolve));
  const stopAll = (): void => {
    running = false;
    stopped();
  };
  process.once('SIGINT', stopAll);
  const started = Date.now();
  const payload = crypto.randomBytes(o.frameBytes);
  const tty = o.out.isTTY === true;
  let last = { t: started, frames: 0, commits: 0 };
  const progress = setInterval(() => {
    const now = Date.now();
    const dt = (now - last.t) / 1000;
    const line = `sessions ${c.sessions}/${o.cores}  frames/s ${((c.frames - last.frames) / dt).toFixed(0)}  commits/s ${((c.commits - last.commits) / dt).toFixed(1)}  frames ${c.frames}  commits ${c.commits}  errors ${c.errors}  taken back ${c.takenBack}  waiting ${c.waits}`;
    last = { t: now, frames: c.frames, commits: c.commits };
    o.out.write(tty ? `\r\x1b[2K${line}` : `${line}\n`);
  }, tty ? 1000 : 5000);
  const deadline = o.durationS > 0 ? setTimeout(stopAll, o.durationS * 1000) : undefined;

  const oneCore = async (i: number): Promise<void> => {
    const client = new CoreClient({ url: o.url, engineKey: o.engineKey, ...(o.donorToken ? { donorToken: o.donorToken } : {}), ...(ca ? { ca } : {}) });
    client.on('error', () => undefined);
    /** The assignment in hand: checkpoints and frames committed, frames sent since its last checkpoint. */
    const current = { checkpoints: 0, committed: 0, sent: 0 };
    const countCommit = (frames: number, ms: number | undefined): void => {
      if (ms !== undefined) c.commitMs.push(ms);
      c.commits++;
      current.checkpoints++;
      current.committed = frames;
      current.sent = 0;
    };
    // The server discards the frames a stream has buffered when it takes the stream back or the
    // socket closes (the client then reconnects and resumes on its own, between two requests
    // or under one): they are not counted, and the core sends new ones.
    const lose = (): void => {
      c.frames -= current.sent;
      c.bytes -= current.sent * payload.length;
      current.sent = 0;
    };
    let dropped: { sent: number; committed: number } | undefined;
    client.on('stop', (e: { reconnect: boolean }) => {
      // server_shutdown: the socket closes next, and the stream is resumed.
      if (e.reconnect) return;
      c.takenBack++;
      lose();
    });
    client.on('disconnect', () => {
      dropped = { sent: current.sent, committed: current.committed };
      lose();
    });
    client.on('reconnect', () => c.reconnects++);
    client.on('resumed', (a: { frames: number }) => {
      // A checkpoint whose reply the drop lost may have committed: the resumed stream says so.
      if (dropped && dropped.sent > 0 && a.frames > dropped.committed) {
        c.frames += dropped.sent;
        c.bytes += dropped.sent * payload.length;
        countCommit(a.frames, undefined);
      }
      dropped = undefined;
    });
    try {
      await client.connect();
    } catch (err) {
      c.errors++;
      o.out.write(`\ncore ${i}: cannot connect: ${(err as Error).message}\n`);
      return;
    }
    c.sessions++;
    // Paces this core's messages at o.ratePerS, and sends a refused one again after the delay.
    let next = Date.now();
    const paced = async <T>(send: () => Promise<T>, relieve?: () => Promise<boolean>): Promise<T> => {
      for (;;) {
        if (o.ratePerS > 0) {
          const wait = next - Date.now();
          next = Math.max(next, Date.now()) + 1000 / o.ratePerS;
          if (wait > 0) await sleep(wait, () => running);
        }
        try {
          return await send();
        } catch (err) {
          const waitS = sendAgainAfterS(err);
          if (waitS === undefined) throw err;
          // Refused as the run ended (a wait cut short by its end): not an error of the core.
          if (!running) throw RUN_OVER;
          c.refused++;
          // The node's spill space is spent: committing what this core buffered frees some of it,
          // and then the frame is sent again at once; with nothing to commit, it waits.
          if ((err as CoreError).code === 'buffer_full' && relieve && (await relieve())) continue;
          await sleep(waitS * 1000, () => running);
        }
      }
    };
    /**
     * After a request failed with `disconnected` (the node restarted or drained): waits until the
     * client has reconnected (to another node behind the same address) and resumed its stream,
     * whose frames since the last checkpoint are then sent again, or until the run stops.
     * False for any other error.
     */
    const reconnected = async (err: unknown): Promise<boolean> => {
      if (!(err instanceof CoreError && err.code === 'disconnected' && running)) return false;
      await Promise.race([client.reconnected(), whenStopped]);
      return true;
    };
    /** One assignment's frames, checkpoints and stop, until done or the server takes it back. */
    const work = async (): Promise<void> => {
      const checkpoint = async (): Promise<void> => {
        const t0 = Date.now();
        // Built once: a refused checkpoint is sent again as it was (the server recognises it
        // by its files when its commit point landed without an answer).
        const files = [{ name: 'state.xml', data: Buffer.from(`core ${i} checkpoint ${Date.now()}`) }];
        const done = await paced(() => client.checkpoint(files));
        countCommit(done.frames, Date.now() - t0);
      };
      // A frame refused buffer_full checkpoints what is buffered first, if anything is.
      const relieve = async (): Promise<boolean> => {
        if (current.sent === 0) return false;
        await checkpoint();
        return true;
      };
      // Resumed: its checkpoints so far count, and the frames since the last one are sent anew.
      while (running && current.checkpoints < o.checkpointsPerAssignment && client.assignment) {
        // Reads `current.sent` each time: a drop or a stop under the loop sets it back to 0.
        while (running && current.sent < o.checkpointEvery && client.assignment) {
          await paced(() => client.sendFrames([{ name: 'frames.xtc', data: payload }], 1), relieve);
          current.sent++;
          c.frames++;
          c.bytes += payload.length;
        }
        if (!client.assignment) return;
        await checkpoint();
      }
      if (!client.assignment) return;
      if (Math.random() < o.errorRate) {
        c.errors++;
        await paced(() => client.stop('simulated error'));
      } else {
        await paced(() => client.stop());
      }
    };
    try {
      while (running) {
        // After a reconnect the client has resumed its stream: go on with it from its last checkpoint.
        if (!client.assignment) {
          let assigned;
          try {
            assigned = await paced(() => client.assign(o.targetId));
          } catch (err) {
            if (err instanceof CoreError && err.code === 'no_streams_available') {
              c.waits++;
              await sleep(Math.min(5, err.retryAfterS ?? 5) * 1000, () => running);
              c.waits--;
              continue;
            }
            if (await reconnected(err)) continue;
            throw err;
          }
          c.assignments++;
          Object.assign(current, { checkpoints: 0, committed: assigned.frames, sent: 0 });
        }
        try {
          await work();
        } catch (err) {
          if (await reconnected(err)) continue;
          // The server's `stop` (its manager stopped or deleted the stream) can cross a message
          // already sent, which then gets not_assigned: the work is over, ask for another stream.
          if (!(err instanceof CoreError && err.code === 'not_assigned')) throw err;
        }
      }
    } catch (err) {
      // Its frames since the last checkpoint are not committed now: not counted.
      if (err === RUN_OVER) return lose();
      c.errors++;
      if (running) o.out.write(`\ncore ${i}: ${(err as Error).message}\n`);
    } finally {
      c.sessions--;
      await client.close();
    }
  };

  await Promise.all(Array.from({ length: o.cores }, (_, i) => oneCore(i)));
  clearInterval(progress);
  if (deadline) clearTimeout(deadline);
  process.off('SIGINT', stopAll);
  const secs = (Date.now() - started) / 1000;
  const sorted = [...c.commitMs].sort((a, b) => a - b);
  const pct = (p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;
  o.out.write(
    `${tty ? '\n' : ''}summary: ${o.cores} cores for ${secs.toFixed(1)} s: ${c.assignments} assignments, ${c.frames} frames (${(c.frames / secs).toFixed(0)}/s, ${(c.bytes / secs / 1e6).toFixed(2)} MB/s), ` +
      `${c.commits} commits (${(c.commits / secs).toFixed(1)}/s, p50 ${pct(0.5)} ms, p99 ${pct(0.99)} ms), ${c.errors} errors, ${c.takenBack} assignments taken back by the server, ${c.reconnects} reconnects, ${c.refused} messages refused for now (rate_limited, unavailable, buffer_full with a delay) and sent again\n`,
  );
  return c;
}

function sleep(ms: number, keepGoing: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const end = Date.now() + ms;
    const tick = (): void => {
      if (!keepGoing() || Date.now() >= end) resolve();
      else setTimeout(tick, Math.min(250, end - Date.now()));
    };
    tick();
  });
}
