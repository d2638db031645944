/**
 * The `assignment` message (PROTOCOL §2) as UTF-8 JSON bytes. Its files are hundreds of KiB
 * (a stream's seed state) sent as base64. Encoding a file to one base64 string costs more than
 * the encoding itself: a string over V8's regular object size (128 KiB) is allocated in large-
 * object space, copied into the message, and freed only by a full collection, once per file
 * per set-up (docs/performance.md). So the files are base64-encoded straight into the message
 * buffer, a slice at a time, each slice's string small enough to die young; base64 never needs
 * escaping in JSON. Every other value goes through `JSON.stringify`.
 */

/** Input bytes per base64 slice: a multiple of 3 (no padding mid-file), its 64 KiB string well below large-object size. */
const SLICE_BYTES = 48 * 1024;

/**
 * Where an encoder writes a message: a buffer of at least `bytes` bytes, which the caller may
 * reuse once the message is sent (the encoder returns the part it wrote).
 */
export type MessageBuffer = (bytes: number) => Buffer;

/** A {@link MessageBuffer} that allocates a buffer of its own for every message. */
export const newBuffer: MessageBuffer = (bytes) => Buffer.allocUnsafe(bytes);

/** Writes a message into the buffer it is given; returns the part it wrote. */
export type MessageEncoder = (into: MessageBuffer) => Buffer;

/**
 * Prepares the JSON of `fields` plus `files` (name → raw bytes, sent as base64) as one object,
 * `files` last: whatever can fail (`JSON.stringify` of the fields) happens now, and the
 * returned encoder only writes bytes, so a transport may run it later, when it sends.
 * @param fields the message without `files`; must not contain a `files` key
 */
export function assignmentEncoder(fields: Record<string, unknown>, files: Record<string, Uint8Array>): MessageEncoder {
  const head = JSON.stringify(fields);
  const pieces: Array<string | Buffer> = [`${head.slice(0, -1)},"files":{`];
  let first = true;
  for (const [name, bytes] of Object.entries(files)) {
    pieces.push(`${first ? '' : ','}${JSON.stringify(name)}:"`, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), '"');
    first = false;
  }
  pieces.push('}}');
  let size = 0;
  for (const p of pieces) size += typeof p === 'string' ? Buffer.byteLength(p, 'utf8') : 4 * Math.ceil(p.length / 3);
  return (into) => {
    const out = into(size);
    let at = 0;
    for (const p of pieces) {
      if (typeof p === 'string') at += out.write(p, at, 'utf8');
      else for (let i = 0; i < p.length; i += SLICE_BYTES) at += out.write(p.toString('base64', i, Math.min(p.length, i + SLICE_BYTES)), at, 'latin1');
    }
    return out.length === at ? out : out.subarray(0, at);
  };
}
