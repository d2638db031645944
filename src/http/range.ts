/**
 * Single byte ranges (RFC 9110 §14) on streamed downloads, so an interrupted download of a
 * frame or seed file can resume where it stopped. Only replies with a {@link StreamBody}
 * whose bytes never change take part: the file downloads (partitions are append-only), so a
 * prefix the client already holds stays valid and no validator (ETag/If-Range) is needed. Multi-range requests are answered with the whole
 * body, which RFC 9110 allows.
 */
import { AppError } from '../errors';
import { isStreamBody, type Reply, type Request } from './router';

/** An inclusive byte range within a body. */
export interface ByteRange {
  start: number;
  end: number;
}

const SINGLE = /^bytes=(\d*)-(\d*)$/;

/**
 * Parses a Range header against a body of `length` bytes.
 * @returns the range; `undefined` when the header is absent, malformed or multi-range (send
 * the whole body); `'unsatisfiable'` when it is well formed but starts past the end.
 */
export function parseRange(header: string | undefined, length: number): ByteRange | 'unsatisfiable' | undefined {
  if (!header) return undefined;
  const m = SINGLE.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  // Numbers past 2^53 are not byte offsets of anything stored here.
  if (m[1]!.length > 15 || m[2]!.length > 15) return undefined;
  if (m[1] === '') {
    // Suffix range: the last N bytes.
    const n = Number(m[2]);
    // RFC 9110 §14.1.1: no byte of an empty representation can be selected.
    if (n === 0 || length === 0) return 'unsatisfiable';
    return { start: Math.max(0, length - n), end: length - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? length - 1 : Math.min(Number(m[2]), length - 1);
  if (m[2] !== '' && Number(m[2]) < start) return undefined;
  if (start >= length) return 'unsatisfiable';
  return { start, end };
}

/** The bytes `[skip, skip + take)` of a chunk sequence; stops reading the source once done. */
export async function* sliceChunks(chunks: AsyncIterable<Uint8Array>, skip: number, take: number): AsyncGenerator<Uint8Array> {
  if (take <= 0) return;
  for await (const chunk of chunks) {
    if (skip >= chunk.length) {
      skip -= chunk.length;
      continue;
    }
    const part = chunk.subarray(skip, Math.min(chunk.length, skip + take));
    skip = 0;
    take -= part.length;
    yield part;
    // Leaving the loop runs the source's finally blocks (GridFS streams are closed).
    if (take <= 0) return;
  }
}

/**
 * Applies the request's Range header to a 200 streamed reply of a GET or HEAD: 206 with
 * Content-Range, or throws 416 `range_not_satisfiable`. Every such 200 advertises
 * `Accept-Ranges: bytes`; other replies (and bodies that {@link StreamBody.changes}) pass
 * through untouched.
 */
export function withRange(req: Pick<Request, 'method' | 'headers'>, reply: Reply): Reply {
  if (reply.status !== 200 || !isStreamBody(reply.body) || reply.body.changes || (req.method !== 'GET' && req.method !== 'HEAD')) return reply;
  const body = reply.body;
  const headers = { ...reply.headers, 'accept-ranges': 'bytes' };
  const range = parseRange(req.headers.range, body.length);
  if (range === undefined) return { ...reply, headers };
  if (range === 'unsatisfiable') {
    // The body will not be read: let its generator release what it holds.
    void (body.chunks as AsyncGenerator<Uint8Array>).return?.(undefined);
    throw new AppError('range_not_satisfiable', `The range starts at or past the end of the ${body.length} bytes`, { 'content-range': `bytes */${body.length}` });
  }
  const take = range.end - range.start + 1;
  // A body that can start mid-way skips the bytes before the range without reading them.
  const chunks = body.from ? sliceChunks(body.from(range.start), 0, take) : sliceChunks(body.chunks, range.start, take);
  return {
    status: 206,
    headers: { ...headers, 'content-range': `bytes ${range.start}-${range.end}/${body.length}` },
    body: { length: take, chunks },
  };
}
