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

/** A {@link MessageEncoder} that knows the size of what it writes (bytes). */
export type SizedEncoder = MessageEncoder & { readonly bytes: number };

/**
 * A file already in base64 (ASCII bytes), as the seed cache keeps shared content: it goes into
 * a message by one copy, making no strings for the collector to sweep.
 */
export class Base64File {
  constructor(readonly ascii: Buffer) {}
}

/** What an assignment's file is given as: raw bytes, or already in base64. */
export type AssignmentFile = Uint8Array | Base64File;

/** Length of the base64 of `n` bytes. */
export function base64Length(n: number): number {
  return 4 * Math.ceil(n / 3);
}

/** Writes the base64 of `bytes` into `out` at `at`, a slice at a time; returns the bytes written. */
export function writeBase64(bytes: Buffer, out: Buffer, at: number): number {
  const start = at;
  for (let i = 0; i < bytes.length; i += SLICE_BYTES) at += out.write(bytes.toString('base64', i, Math.min(bytes.length, i + SLICE_BYTES)), at, 'latin1');
  return at - start;
}

/** The base64 of `bytes` as a buffer of its own. */
export function toBase64File(bytes: Uint8Array): Base64File {
  const raw = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = Buffer.allocUnsafe(base64Length(raw.length));
  writeBase64(raw, out, 0);
  return new Base64File(out);
}

/**
 * Prepares the JSON of `fields` plus `files` (name → raw bytes, sent as base64, or bytes
 * already in base64) as one object,
 * `files` last: whatever can fail (`JSON.stringify` of the fields) happens now, and the
 * returned encoder only writes bytes, so a transport may run it later, when it sends.
 * @param fields the message without `files`; must not contain a `files` key
 */
export function assignmentEncoder(fields: Record<string, unknown>, files: Record<string, AssignmentFile>): SizedEncoder {
  const head = JSON.stringify(fields);
  const pieces: Array<string | Buffer | Base64File> = [`${head.slice(0, -1)},"files":{`];
  let first = true;
  for (const [name, file] of Object.entries(files)) {
    const body = file instanceof Base64File ? file : Buffer.from(file.buffer, file.byteOffset, file.byteLength);
    pieces.push(`${first ? '' : ','}${JSON.stringify(name)}:"`, body, '"');
    first = false;
  }
  pieces.push('}}');
  let size = 0;
  for (const p of pieces) size += typeof p === 'string' ? Buffer.byteLength(p, 'utf8') : p instanceof Base64File ? p.ascii.length : base64Length(p.length);
  const encode = (into: MessageBuffer): Buffer => {
    const out = into(size);
    let at = 0;
    for (const p of pieces) {
      if (typeof p === 'string') at += out.write(p, at, 'utf8');
      else if (p instanceof Base64File) at += p.ascii.copy(out, at);
      else at += writeBase64(p, out, at);
    }
    return out.length === at ? out : out.subarray(0, at);
  };
  return Object.assign(encode, { bytes: size });
}
