/**
 * A session's side of its `ws` socket (the Node transport).
 *
 * Large messages leave in fragments. Node's TLS layer keeps, for the life of a connection,
 * an output buffer as large as the most it ever had to encrypt at once: one 270 KiB
 * assignment (a stream's seed files) left about 376 KiB held per idle core, against 12 KiB on
 * uWS (docs/performance.md). So a message over {@link FRAGMENT_BYTES} is sent as WebSocket
 * fragments, each written once the previous one has reached the kernel; messages sent
 * meanwhile wait behind it, as a fragmented message must not be interleaved with others.
 */
import { WebSocket } from 'ws';
import { newBuffer, type MessageEncoder } from '../core/assignment-message';
import type { CoreSocket } from '../core/session';

/** Largest piece of a message written at once (bytes); one TLS record holds 16 KiB. */
export const FRAGMENT_BYTES = 16 * 1024;

/**
 * What ws and Node keep per message queued beside its bytes until it is written (measured:
 * about 450 bytes), counted so that many small replies a core does not read count what they cost.
 */
const PER_WRITE_BYTES = 512;


/** Unsent bytes of all core sockets of a node transport together (memory.unsentBytes). */
export class UnsentBytes {
  /** Bytes; each socket adds what it held when last counted. */
  total = 0;
}

/** The Node transport's {@link CoreSocket}. */
export class NodeCoreSocket implements CoreSocket {
  /** Messages waiting while a large one is written in fragments; undefined when none is. */
  private waiting: Buffer[] | undefined;
  /** What of {@link unsentBytes} is in the transport's total; -1 once the socket is gone. */
  private counted = 0;
  /** The message being written in fragments, held whole until its last fragment is written (bytes). */
  private fragmenting = 0;
  /** Messages and fragments handed to ws whose write has not completed. */
  private writing = 0;

  /**
   * @param ws the open socket
   * @param maxBackpressure bytes of unsent replies after which a core that does not read is dropped
   * @param unsent the transport's total, which this socket's unsent bytes are part of
   * @param unreadRepliesBytes unsent bytes past which a close skips the handshake (core.unreadRepliesBytes)
   */
  constructor(
    private readonly ws: WebSocket,
    private readonly maxBackpressure: number,
    private readonly unsent: UnsentBytes,
    private readonly unreadRepliesBytes: number,
  ) {}

  /**
   * Brings this socket's part of the total up to date: after each write, and when its socket
   * drains (between the two it can only be too high, as the kernel takes bytes).
   */
  recount(): void {
    if (this.counted < 0) return;
    const now = this.unsentBytes();
    this.unsent.total += now - this.counted;
    this.counted = now;
  }

  /** The socket closed: its bytes leave the total. */
  forget(): void {
    if (this.counted < 0) return;
    this.unsent.total -= this.counted;
    // Never counted again: a late drain or send callback must not add it back.
    this.counted = -1;
    this.waiting = undefined;
    this.fragmenting = 0;
  }

  /** {@link CoreSocket.send}: the message as JSON, behind any message being written in fragments. */
  send(message: Record<string, unknown>): void {
    this.write(Buffer.from(JSON.stringify(message)));
  }

  /** {@link CoreSocket.sendEncoded}: encoded into a buffer of its own, which ws keeps until it is written; counted at once. */
  sendEncoded(encode: MessageEncoder, counted: () => void): void {
    // ws holds on to what it has not written yet: every message gets a buffer of its own.
    this.write(encode(newBuffer));
    counted();
  }

  /** Sends UTF-8 JSON, in fragments when large, behind any message still being fragmented. */
  write(json: Buffer): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    // Mirrors uWS closeOnBackpressureLimit: a core that does not read is dropped.
    if (this.unsentBytes() > this.maxBackpressure) this.ws.terminate();
    else if (this.waiting) this.waiting.push(json);
    else if (json.length > FRAGMENT_BYTES) this.writeFragments(json, 0);
    else this.sendPiece(json, true, () => undefined);
    this.recount();
  }

  /** Hands ws one message or fragment, counted until written. */
  private sendPiece(piece: Buffer, fin: boolean, written: (err?: Error) => void): void {
    this.writing++;
    this.ws.send(piece, { binary: false, fin }, (err) => {
      this.writing--;
      written(err);
      this.recount();
    });
  }

  /** {@link CoreSocket.close}: at once, without the handshake, past core.unreadRepliesBytes of unread replies. */
  close(code: number, reason: string): void {
    this.ws.close(code, reason);
    // Behind unread replies the close frame would never be read, and ws would hold the
    // socket and its bytes for its 30 s close timeout.
    if (this.unsentBytes() > this.unreadRepliesBytes) this.ws.terminate();
  }

  /** {@link CoreSocket.unsentBytes}. */
  unsentBytes(): number {
    // What ws holds, the rest of a large message being written in fragments, and the messages
    // behind it.
    let n = this.ws.bufferedAmount + this.fragmenting + this.writing * PER_WRITE_BYTES;
    for (const m of this.waiting ?? []) n += m.length;
    return n;
  }

  private writeFragments(json: Buffer, from: number): void {
    this.waiting ??= [];
    const to = Math.min(from + FRAGMENT_BYTES, json.length);
    const fin = to === json.length;
    this.fragmenting = json.length;
    this.sendPiece(json.subarray(from, to), fin, (err) => {
      if (err || this.ws.readyState !== WebSocket.OPEN) {
        this.waiting = undefined;
        this.fragmenting = 0;
        return;
      }
      if (!fin) {
        this.writeFragments(json, to);
        return;
      }
      this.fragmenting = 0;
      const next = this.waiting ?? [];
      this.waiting = undefined;
      for (const m of next) this.write(m);
    });
  }
}
