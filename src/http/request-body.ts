/**
 * A request body, for both transports: whether one must be read (from the headers), the sink
 * that keeps it as it arrives (bounded by the route's limit and counted against the memory
 * budget), and the pace it must keep (http.bodyGraceS, http.minBodyBytesPerSecond), so a
 * client that drips a body holds neither its connection nor the bytes it sent for long.
 */
import { AppError } from '../errors';

/**
 * Decides from the headers whether a body must be read: `refused` (400/413 without
 * reading), `none` (no body), or `read`.
 */
export function bodyDecision(method: string, headers: Record<string, string>, limit: number): AppError | 'none' | 'read' {
  if (method === 'GET' || method === 'HEAD' || method === 'OPTIONS') return 'none';
  const declared = headers['content-length'];
  if (declared !== undefined) {
    if (!/^\d+$/.test(declared)) return new AppError('bad_request', 'Invalid Content-Length');
    if (Number(declared) > limit) return new AppError('too_large', `Body of ${declared} bytes is over the limit of ${limit} bytes for this route`);
    return Number(declared) === 0 ? 'none' : 'read';
  }
  return headers['transfer-encoding'] ? 'read' : 'none';
}

/** The error for a body that grew past its limit while being read. */
export function bodyTooLarge(limit: number): AppError {
  return new AppError('too_large', `Body is over the limit of ${limit} bytes for this route`);
}

/**
 * A request body as it arrives, for both transports: bounded by the route's limit, and each
 * chunk counted against the node's memory budget before it is kept (`take`), so a client holds
 * only what it has sent, never what it declared.
 */
export class BodySink {
  private chunks: Buffer[] = [];
  private size = 0;
  /** Set once the body is refused as a whole (too slow, or its exchange over): every later chunk is refused with it. */
  private refusal: AppError | undefined;
  private readonly onClose: Array<() => void> = [];

  /** @param take counts `bytes` against the budget; false when they do not fit */
  constructor(
    readonly limit: number,
    private readonly take: (bytes: number) => boolean,
  ) {}

  /**
   * Keeps a chunk: a Buffer as it is, an ArrayBuffer (a transport's reused memory) copied.
   * Returns the refusal when it would pass the limit or the budget, and then keeps nothing.
   */
  add(chunk: Buffer | ArrayBuffer): AppError | undefined {
    if (this.refusal) return this.refusal;
    const n = chunk.byteLength;
    const refused = this.size + n > this.limit ? bodyTooLarge(this.limit) : this.take(n) ? undefined : bodiesFull();
    if (refused) {
      this.chunks = [];
      return refused;
    }
    this.size += n;
    this.chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(new Uint8Array(chunk).slice()));
    return undefined;
  }

  /** Bytes kept so far. */
  get received(): number {
    return this.size;
  }

  /** Refuses the body from here on with `err`, and forgets what was kept. */
  refuse(err: AppError): void {
    this.refusal = err;
    this.drop();
  }

  /**
   * Ends the sink with its exchange (answered or aborted): later chunks are refused uncounted,
   * what was kept is forgotten, and what waits on the body (its pace) stops.
   */
  close(): void {
    this.refuse(new AppError('bad_request', 'The request was already answered'));
    for (const f of this.onClose.splice(0)) f();
  }

  /** Runs `f` once when the sink is closed. */
  whenClosed(f: () => void): void {
    this.onClose.push(f);
  }

  /** The body so far, in one buffer. */
  bytes(): Buffer {
    return this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.size);
  }

  /** Forgets what was kept (the budget is given back when the exchange settles). */
  drop(): void {
    this.chunks = [];
  }
}

function bodiesFull(): AppError {
  return new AppError('rate_limited', "The node's memory budget for request bodies is exhausted; retry later", {}, 1);
}

/** How fast a body must arrive (config http.bodyGraceS, http.minBodyBytesPerSecond). */
export interface BodyPace {
  /** Milliseconds a body has, from when its route lets it be read (after authentication), before its rate counts. */
  graceMs: number;
  /** Bytes per second it must average after that: each byte received buys 1/this seconds more. */
  minBytesPerSecond: number;
}

/**
 * `body`, or a `request_timeout` refusal once it falls behind `pace`: when it is still
 * arriving at `graceMs` plus one second per `minBytesPerSecond` bytes received, counted from
 * when it may be read (the request head, or once `gate`, the route's authentication, lets it:
 * the server's own wait is not the client's). The sink then refuses every later chunk, so the
 * transport stops reading; the exchange closes the connection with the refusal. One timer per
 * body being read, cleared when the sink is closed.
 */
export function keepPace(body: Promise<Buffer>, sink: BodySink, pace: BodyPace, gate?: Promise<void>): Promise<Buffer> {
  let timer: NodeJS.Timeout | undefined;
  // Set once the body has come (or failed) or its exchange is over: nothing left to time.
  let done = false;
  sink.whenClosed(() => {
    done = true;
    clearTimeout(timer);
  });
  const late = new Promise<never>((_, reject) => {
    const begin = (): void => {
      if (done) return;
      const started = Date.now();
      const check = (): void => {
        const deadline = started + pace.graceMs + (sink.received / pace.minBytesPerSecond) * 1000;
        const left = deadline - Date.now();
        if (left > 0) {
          timer = setTimeout(check, left);
          return;
        }
        const err = new AppError('request_timeout', `The request body did not arrive in time: ${sink.received} bytes in ${Math.round((Date.now() - started) / 1000)} s (after the first ${pace.graceMs / 1000} s it must average ${pace.minBytesPerSecond} bytes a second)`);
        sink.refuse(err);
        reject(err);
      };
      timer = setTimeout(check, pace.graceMs);
    };
    // A gate that refuses never lets the body be read: nothing to time.
    if (gate) gate.then(begin, () => undefined);
    else begin();
  });
  late.catch(() => undefined);
  return Promise.race([body, late]).finally(() => {
    done = true;
    clearTimeout(timer);
  });
}
