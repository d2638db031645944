/**
 * Core messages received in part on the node transport (memory.partialMessagesBytes). `ws`
 * holds a message's bytes until it is whole and does not say how many, so this counts what
 * each socket has read since its last whole message, each read with what ws keeps for it
 * ({@link PER_READ_BYTES}): short, per socket, by at most the part of one read that followed
 * the end of a message. A socket whose read would take the count of
 * all sockets past the share is closed with 1013 and read no further (uws: patch 4 of the
 * vendored build does the same natively).
 */
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { CLOSES } from '../errors';

/** A client's control frame header: 2 bytes, then the 4-byte mask (payloads are at most 125 bytes). */
const CLIENT_CONTROL_HEADER_BYTES = 6;

/**
 * What ws holds per read beside its bytes until the message is whole: each read is a Buffer of
 * its own (about 400 bytes each, measured with one-byte TLS records), so a client sending a
 * message a byte at a time costs far more than its bytes.
 */
export const PER_READ_BYTES = 512;

/** One per node transport. */
export class PartialMessages {
  private held = 0;

  /** @param limit the most bytes all sockets together may hold in part */
  constructor(private readonly limit: number) {}

  /** Bytes held in part now, all sockets together. */
  get total(): number {
    return this.held;
  }

  /**
   * Counts what `socket` (under `ws`, which reads it first) reads; returns what to call as each
   * whole message is delivered.
   */
  track(ws: WebSocket, socket: Duplex): () => void {
    let mine = 0;
    let deliveredDuringRead = false;
    // Bytes of control frames (pings, pongs) ws parsed from the current read: they are not part
    // of a message (they may come between its fragments, so they must not reset the count);
    // left in, a pong every heartbeat would grow an idle socket's count.
    let control = 0;
    const onControl = (payload: Buffer): void => {
      control += CLIENT_CONTROL_HEADER_BYTES + payload.length;
    };
    ws.on('ping', onControl);
    ws.on('pong', onControl);
    socket.on('data', (chunk: Buffer) => {
      const notMessage = control;
      control = 0;
      // ws has parsed the read already: a message that ended in it was delivered, and what
      // followed its end is the start of the next one (left uncounted).
      if (deliveredDuringRead) {
        deliveredDuringRead = false;
        return;
      }
      const bytes = chunk.length - notMessage;
      if (bytes <= 0) return;
      const n = bytes + PER_READ_BYTES;
      mine += n;
      this.held += n;
      if (this.held > this.limit) {
        // The close frame, no more reading, and the socket gone (with what ws held of it) once
        // the frame is out, rather than after ws's close handshake.
        ws.close(CLOSES.partial_messages.code, CLOSES.partial_messages.reason);
        socket.pause();
        socket.once('finish', () => socket.destroy());
        socket.end();
      }
    });
    socket.once('close', () => {
      this.held -= mine;
      mine = 0;
    });
    return () => {
      this.held -= mine;
      mine = 0;
      deliveredDuringRead = true;
    };
  }
}
