/**
 * The id a refusal names for a message it does not read (core.messagesPerSecond): found only
 * in a small text message or binary header, never trusted past being an integer.
 */
import t from 'tap';
import { DEFAULT_BINARY_LIMITS, encodeBinary, parseBinary, parseText, peekRequestId, PEEK_MAX_BYTES } from '../src/core/messages';

const text = (o: unknown): Buffer => Buffer.from(typeof o === 'string' ? o : JSON.stringify(o));

t.test('text messages', async (t) => {
  t.equal(peekRequestId(text({ type: 'ping', id: 7 }), false), 7);
  t.equal(peekRequestId(text({ type: 'anything', id: 9, extra: true }), false), 9, 'nothing else is checked');
  t.equal(peekRequestId(text({ type: 'ping', id: 1.5 }), false), null, 'a non-integer id');
  t.equal(peekRequestId(text({ type: 'ping', id: '7' }), false), null, 'a string id');
  t.equal(peekRequestId(text({ type: 'ping' }), false), null, 'no id');
  t.equal(peekRequestId(text('[1,2]'), false), null, 'an array');
  t.equal(peekRequestId(text('null'), false), null, 'null');
  t.equal(peekRequestId(text('{"id": 3'), false), null, 'not JSON');
  const big = { type: 'stop', id: 5, error: '' };
  big.error = 'x'.repeat(PEEK_MAX_BYTES - JSON.stringify(big).length);
  t.equal(peekRequestId(text(big), false), 5, `exactly ${PEEK_MAX_BYTES} bytes: parsed`);
  big.error += 'x';
  t.equal(peekRequestId(text(big), false), null, 'one byte more: not');
});

t.test('binary messages', async (t) => {
  const frame = encodeBinary({ type: 'frame', id: 42, seq: 1 }, [{ name: 'a.xtc', bytes: Buffer.alloc(256 * 1024) }]);
  t.equal(peekRequestId(frame, true), 42, 'the header id; the payload is not read');
  t.equal(peekRequestId(encodeBinary({ type: 'frame', id: 3, seq: 1, pad: 'x'.repeat(PEEK_MAX_BYTES) }, []), true), null, 'a header over the bound');
  const lying = Buffer.from(frame);
  lying.writeUInt32BE(frame.length, 0);
  t.equal(peekRequestId(lying, true), null, 'a header length past the message');
  t.equal(peekRequestId(Buffer.from([0, 0]), true), null, 'shorter than the length field');
  const zero = Buffer.alloc(4);
  t.equal(peekRequestId(zero, true), null, 'an empty header');
});

t.test('a value nested too deep to print is bad_request, not internal', async (t) => {
  const deep = '['.repeat(200_000) + ']'.repeat(200_000);
  t.throws(() => parseText(`{"id":1,"type":${deep}}`), { code: 'bad_request', message: /Unknown message type an array/ });
  const header = Buffer.from(`{"type":"frame","id":2,"seq":1,"files":[{"name":${deep},"size":0}]}`);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(header.length, 0);
  t.throws(() => parseBinary(Buffer.concat([len, header]), { ...DEFAULT_BINARY_LIMITS, maxHeaderBytes: header.length }), { code: 'bad_request', message: /Bad file name an array/ });
});
