/**
 * The Node transport's core socket (src/transport/node-core-socket.ts): a large message leaves
 * as WebSocket fragments of at most FRAGMENT_BYTES, written one after another, and messages
 * sent meanwhile follow it in order, never between its fragments. Seen on the wire by a raw
 * client that parses the frames itself.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import t from 'tap';
import { WebSocketServer } from 'ws';
import { FRAGMENT_BYTES, NodeCoreSocket, UnsentBytes } from '../src/transport/node-core-socket';
import { handshakeRequest } from './helpers/handshake';

interface Frame {
  fin: boolean;
  opcode: number;
  payload: Buffer;
}

/** Parses unmasked server frames from `buf`; returns the frames and the unparsed rest. */
function parseFrames(buf: Buffer): { frames: Frame[]; rest: Buffer } {
  const frames: Frame[] = [];
  let at = 0;
  for (;;) {
    if (buf.length - at < 2) break;
    let len = buf[at + 1]! & 0x7f;
    let head = 2;
    if (len === 126) {
      if (buf.length - at < 4) break;
      len = buf.readUInt16BE(at + 2);
      head = 4;
    } else if (len === 127) {
      if (buf.length - at < 10) break;
      len = Number(buf.readBigUInt64BE(at + 2));
      head = 10;
    }
    if (buf.length - at < head + len) break;
    frames.push({ fin: (buf[at]! & 0x80) !== 0, opcode: buf[at]! & 0x0f, payload: buf.subarray(at + head, at + head + len) });
    at += head + len;
  }
  return { frames, rest: buf.subarray(at) };
}

t.test('a large message leaves in fragments, and what is sent meanwhile follows it in order', async (t) => {
  const server = http.createServer();
  const wss = new WebSocketServer({ server, perMessageDeflate: false });
  const big = Buffer.from(JSON.stringify({ type: 'assignment', files: { 'state.xml': crypto.randomBytes(150 * 1024).toString('base64') } }));
  // Each counted by the transport by the time sendEncoded returns.
  const countedWhenDone: boolean[] = [];
  wss.on('connection', (ws) => {
    const unsent = new UnsentBytes();
    const socket = new NodeCoreSocket(ws, 64 * 1024 * 1024, unsent, 64 * 1024);
    const sendBig = () => {
      const before = unsent.total;
      let counted = false;
      socket.sendEncoded(() => big, () => (counted = unsent.total - before >= big.length));
      countedWhenDone.push(counted);
    };
    sendBig();
    socket.send({ type: 'after', n: 1 });
    sendBig();
    socket.send({ type: 'after', n: 2 });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const port = (server.address() as net.AddressInfo).port;

  const frames = await new Promise<Frame[]>((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.write(handshakeRequest('/'));
    });
    let buf: Buffer = Buffer.alloc(0);
    let upgraded = false;
    const got: Frame[] = [];
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (!upgraded) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        upgraded = true;
        buf = buf.subarray(end + 4);
      }
      const { frames, rest } = parseFrames(buf);
      got.push(...frames);
      buf = rest;
      if (got.filter((f) => f.fin).length === 4) {
        s.destroy();
        resolve(got);
      }
    });
    s.on('error', reject);
  });

  t.same(countedWhenDone, [true, true], 'each large message is in the transport\'s count when it says so, so its sender stops counting it then');
  t.ok(frames.every((f) => f.payload.length <= FRAGMENT_BYTES), `no frame over ${FRAGMENT_BYTES} bytes (largest ${Math.max(...frames.map((f) => f.payload.length))})`);
  const messages: Buffer[] = [];
  let current: Buffer[] = [];
  frames.forEach((f, i) => {
    t.equal(f.opcode, current.length === 0 ? 1 : 0, `frame ${i}: ${current.length === 0 ? 'text' : 'continuation'}`);
    current.push(f.payload);
    if (f.fin) {
      messages.push(Buffer.concat(current));
      current = [];
    }
  });
  t.equal(messages.length, 4);
  t.ok(messages[0]!.equals(big), 'the first large message arrives whole');
  t.same(JSON.parse(messages[1]!.toString()), { type: 'after', n: 1 }, 'the message sent meanwhile comes after it');
  t.ok(messages[2]!.equals(big), 'the second large message arrives whole');
  t.same(JSON.parse(messages[3]!.toString()), { type: 'after', n: 2 });
  t.ok(frames.length > 2 * Math.ceil(big.length / FRAGMENT_BYTES) - 1, `the large messages left in ${frames.length - 2} fragments`);
});
