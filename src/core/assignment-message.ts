/**
 * The `assignment` message (PROTOCOL §2) as UTF-8 JSON bytes. Its files are base64 strings of
 * hundreds of KiB (a stream's seed state); `JSON.stringify` would scan and copy each of them
 * and the transport convert the result to UTF-8 again, the largest items of the set-up
 * profile with seed files (docs/performance.md). Base64 never needs escaping in JSON, so the
 * files are written into the buffer as they are; every other value goes through
 * `JSON.stringify`.
 */

/**
 * Encodes `fields` plus `files` (name → base64) as one JSON object, `files` last.
 * @param fields the message without `files`; must not contain a `files` key
 */
export function encodeAssignment(fields: Record<string, unknown>, files: Record<string, string>): Buffer {
  const head = JSON.stringify(fields);
  const pieces: Array<[string, BufferEncoding]> = [[`${head.slice(0, -1)},"files":{`, 'utf8']];
  let first = true;
  for (const [name, b64] of Object.entries(files)) {
    pieces.push([`${first ? '' : ','}${JSON.stringify(name)}:"`, 'utf8'], [b64, 'latin1'], ['"', 'utf8']);
    first = false;
  }
  pieces.push(['}}', 'utf8']);
  let size = 0;
  for (const [s, enc] of pieces) size += enc === 'latin1' ? s.length : Buffer.byteLength(s, 'utf8');
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const [s, enc] of pieces) at += out.write(s, at, enc);
  return out;
}
