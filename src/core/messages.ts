/**
 * Parsing of core messages (PROTOCOL §2 "Frames on the wire"): text messages are JSON
 * objects with a `type`; binary messages are a 4-byte big-endian header length, a JSON
 * header, and the payload of the files it lists. Every problem is an AppError with the
 * request id when one could be read, so the session can answer it.
 */
import crypto from 'node:crypto';
import { MessageError } from '../errors';
import { FILE_NAME_PATTERN } from '../model';
import { MAX_RESUME_TOKEN_CHARS, MAX_TARGET_ID_CHARS } from './protocol';
import type { NamedBytes } from '../store/partitions';

/** File names allowed on the wire. */
export const FILE_NAME = new RegExp(FILE_NAME_PATTERN);

/** A text request. */
export type TextRequest =
  | { type: 'assign'; id: number; target_id?: string }
  | { type: 'stop'; id: number; error?: string }
  | { type: 'ping'; id: number }
  | { type: 'resume'; id: number; resume_token: string };

/** A binary data message. */
export interface DataMessage {
  type: 'frame' | 'checkpoint';
  id: number;
  seq: number;
  frames: number;
  files: NamedBytes[];
  payloadBytes: number;
}

/** Bounds on one binary message (PROTOCOL §2, announced in `welcome.limits`). */
export interface BinaryLimits {
  /** Largest JSON header in bytes (core.maxHeaderBytes); larger is `bad_request`. */
  maxHeaderBytes: number;
  /** Most files listed in one message (core.maxFilesPerMessage); more is `too_large`. */
  maxFiles: number;
  /** Most frames one frame message may claim (core.maxFramesPerMessage); more is `too_large`. */
  maxFrames: number;
}

/** The defaults of the config keys, for callers without settings (tests, the SDK). */
export const DEFAULT_BINARY_LIMITS: BinaryLimits = { maxHeaderBytes: 64 * 1024, maxFiles: 256, maxFrames: 100_000 };

/** The fields a binary header may carry, by type; anything else is refused (no padding). */
const HEADER_FIELDS: Record<'frame' | 'checkpoint', ReadonlySet<string>> = {
  frame: new Set(['type', 'id', 'seq', 'frames', 'files', 'sha256']),
  checkpoint: new Set(['type', 'id', 'seq', 'files', 'sha256']),
};
const FILE_FIELDS: ReadonlySet<string> = new Set(['name', 'size']);

function unknownField(obj: Record<string, unknown>, allowed: ReadonlySet<string>): string | undefined {
  for (const k in obj) if (!allowed.has(k)) return k;
  return undefined;
}

function requestId(obj: Record<string, unknown>): number | null {
  return Number.isSafeInteger(obj.id) ? (obj.id as number) : null;
}

/**
 * A client's value in an error message: the start of a string, else only its type. Never
 * serialised whole: a value nested a million levels deep would overflow the stack.
 */
function shown(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.slice(0, 40));
  return value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value === 'object' ? 'an object' : typeof value === 'undefined' ? 'none' : `a ${typeof value}`;
}

/** The JSON header of a binary message (4-byte big-endian length, then the header), or why it has none. */
function headerOf(data: Buffer): Buffer | string {
  if (data.length < 4) return 'Binary message shorter than its 4-byte header length';
  const h = data.readUInt32BE(0);
  if (h === 0 || 4 + h > data.length) return `Header length ${h} does not fit a ${data.length}-byte message`;
  return data.subarray(4, 4 + h);
}

/** Most bytes of JSON {@link peekRequestId} parses: a request's fields fit in far fewer. */
export const PEEK_MAX_BYTES = 1024;

/**
 * The request id of a message that is refused unread (over `core.messagesPerSecond`), so a
 * core with several requests in flight learns which one to send again. Only a text message,
 * or a binary message's header, of at most {@link PEEK_MAX_BYTES} is parsed, and nothing in
 * it is validated: null when there is no integer `id` there, or it would cost more to find.
 */
export function peekRequestId(data: Buffer, isBinary: boolean): number | null {
  const json = isBinary ? headerOf(data) : data;
  if (typeof json === 'string' || json.length > PEEK_MAX_BYTES) return null;
  try {
    const obj: unknown = JSON.parse(json.toString('utf8'));
    return obj && typeof obj === 'object' && !Array.isArray(obj) ? requestId(obj as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function needId(obj: Record<string, unknown>): number {
  const id = requestId(obj);
  if (id === null) throw new MessageError(null, 'bad_request', 'Requests need an integer "id"');
  return id;
}

/** Parses a text message. */
export function parseText(text: string): TextRequest {
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch {
    throw new MessageError(null, 'bad_request', 'Text messages must be JSON objects');
  }
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) throw new MessageError(null, 'bad_request', 'Text messages must be JSON objects');
  const o = obj as Record<string, unknown>;
  const id = requestId(o);
  switch (o.type) {
    case 'assign':
      if (o.target_id !== undefined && (typeof o.target_id !== 'string' || o.target_id.length > MAX_TARGET_ID_CHARS)) throw new MessageError(id, 'bad_request', '"target_id" must be a target id string');
      return { type: 'assign', id: needId(o), ...(o.target_id !== undefined ? { target_id: o.target_id as string } : {}) };
    case 'stop':
      if (o.error !== undefined && typeof o.error !== 'string') throw new MessageError(id, 'bad_request', '"error" must be a string');
      return { type: 'stop', id: needId(o), ...(o.error !== undefined ? { error: o.error as string } : {}) };
    case 'ping':
      return { type: 'ping', id: needId(o) };
    case 'resume':
      if (typeof o.resume_token !== 'string' || o.resume_token.length > MAX_RESUME_TOKEN_CHARS) throw new MessageError(id, 'bad_request', '"resume_token" must be a string');
      return { type: 'resume', id: needId(o), resume_token: o.resume_token };
    case 'frame':
    case 'checkpoint':
      throw new MessageError(id, 'bad_request', `"${o.type}" messages are binary: 4-byte header length, JSON header, payload`);
    default:
      throw new MessageError(id, 'bad_request', `Unknown message type ${shown(o.type)}`);
  }
}

/**
 * Parses a binary data message; `data` must be a private copy (files are views into it:
 * whoever keeps them beyond the message's handling copies them, see FrameBuffer.append).
 */
export function parseBinary(data: Buffer, limits: BinaryLimits = DEFAULT_BINARY_LIMITS): DataMessage {
  const raw = headerOf(data);
  if (typeof raw === 'string') throw new MessageError(null, 'bad_request', raw);
  const h = raw.length;
  // Checked before parsing: a padded header costs neither a JSON parse nor memory past this message.
  if (h > limits.maxHeaderBytes) throw new MessageError(null, 'bad_request', `Header of ${h} bytes is over max_header_bytes (${limits.maxHeaderBytes})`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new MessageError(null, 'bad_request', 'Binary message header is not JSON');
  }
  if (!header || typeof header !== 'object' || Array.isArray(header)) throw new MessageError(null, 'bad_request', 'Binary message header must be a JSON object');
  const id = needId(header);
  if (header.type !== 'frame' && header.type !== 'checkpoint') throw new MessageError(id, 'bad_request', 'Binary messages are "frame" or "checkpoint"');
  const extra = unknownField(header, HEADER_FIELDS[header.type]);
  if (extra !== undefined) throw new MessageError(id, 'bad_request', `Unknown header field ${JSON.stringify(extra.slice(0, 40))} in a "${header.type}" message`);
  const seq = header.seq;
  if (!Number.isSafeInteger(seq) || (seq as number) < 1) throw new MessageError(id, 'bad_request', '"seq" must be an integer ≥ 1');
  let frames = 0;
  if (header.type === 'frame') {
    frames = header.frames === undefined ? 1 : (header.frames as number);
    if (!Number.isSafeInteger(frames) || frames < 1) throw new MessageError(id, 'bad_request', '"frames" must be an integer ≥ 1');
    if (frames > limits.maxFrames) throw new MessageError(id, 'too_large', `"frames" is over max_frames_per_message (${limits.maxFrames})`);
  }
  if (!Array.isArray(header.files)) throw new MessageError(id, 'bad_request', '"files" must be a list of {name, size}');
  if (header.files.length > limits.maxFiles) throw new MessageError(id, 'too_large', `${header.files.length} files is over max_files_per_message (${limits.maxFiles})`);
  const payload = data.subarray(4 + h);
  const files: NamedBytes[] = [];
  const seen = new Set<string>();
  let offset = 0;
  for (const f of header.files as Array<Record<string, unknown>>) {
    if (!f || typeof f !== 'object' || Array.isArray(f)) throw new MessageError(id, 'bad_request', '"files" entries must be {name, size}');
    const stray = unknownField(f, FILE_FIELDS);
    if (stray !== undefined) throw new MessageError(id, 'bad_request', `Unknown field ${JSON.stringify(stray.slice(0, 40))} in a "files" entry`);
    if (typeof f.name !== 'string' || !FILE_NAME.test(f.name)) throw new MessageError(id, 'bad_request', `Bad file name ${shown(f.name)}; names match ${FILE_NAME.source}`);
    if (seen.has(f.name)) throw new MessageError(id, 'bad_request', `File "${f.name}" listed twice`);
    seen.add(f.name);
    if (!Number.isSafeInteger(f.size) || (f.size as number) < 0) throw new MessageError(id, 'bad_request', `File "${f.name}": "size" must be an integer ≥ 0`);
    const size = f.size as number;
    if (offset + size > payload.length) throw new MessageError(id, 'bad_request', `File sizes add up to more than the ${payload.length}-byte payload`);
    files.push({ name: f.name, bytes: payload.subarray(offset, offset + size) });
    offset += size;
  }
  if (offset !== payload.length) throw new MessageError(id, 'bad_request', `File sizes add up to ${offset} bytes but the payload has ${payload.length}`);
  if (header.sha256 !== undefined) {
    if (typeof header.sha256 !== 'string' || !/^[0-9a-fA-F]{64}$/.test(header.sha256)) throw new MessageError(id, 'bad_request', '"sha256" must be 64 hex digits');
    const actual = crypto.createHash('sha256').update(payload).digest('hex');
    if (actual !== header.sha256.toLowerCase()) throw new MessageError(id, 'bad_checksum', 'The payload does not match "sha256"');
  }
  return { type: header.type, id, seq: seq as number, frames, files, payloadBytes: payload.length };
}

/** Builds a binary data message (used by the client SDK and tests). */
export function encodeBinary(header: Record<string, unknown>, files: Array<{ name: string; bytes: Uint8Array }>): Buffer {
  const h = Buffer.from(JSON.stringify({ ...header, files: files.map((f) => ({ name: f.name, size: f.bytes.byteLength })) }));
  const len = Buffer.alloc(4);
  len.writeUInt32BE(h.length, 0);
  return Buffer.concat([len, h, ...files.map((f) => Buffer.from(f.bytes.buffer, f.bytes.byteOffset, f.bytes.byteLength))]);
}
