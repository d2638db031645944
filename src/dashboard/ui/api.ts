/**
 * The admin API from the browser: the user token lives in sessionStorage (gone when the tab
 * closes, never in a URL or cookie) and goes out as `Authorization: Bearer`. URLs are
 * relative to the page, so a proxy that mounts the service under a prefix keeps working.
 */
import type { ErrorBody } from './types.js';

const TOKEN_KEY = 'stream-coordinator.token';

/** A non-2xx answer, with the API's error code and message. */
export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

export function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value: string | null): void {
  if (value === null) sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, value);
}

/** `/v1/x` → a URL relative to the dashboard page (`../v1/x` from `/dashboard/`). */
function url(path: string): string {
  return new URL(`..${path}`, document.baseURI).toString();
}

async function send(method: string, path: string, body?: unknown): Promise<Response> {
  const headers: Record<string, string> = {};
  const t = token();
  if (t) headers.authorization = `Bearer ${t}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(url(path), { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store', credentials: 'omit' });
  if (!res.ok) {
    let code = 'http_error';
    let message = `${res.status} ${res.statusText}`;
    try {
      const e = (await res.json()) as ErrorBody;
      code = e.error.code;
      message = e.error.message;
    } catch {
      // Not a catalogued error body (e.g. from a proxy); keep the status line.
    }
    throw new ApiError(res.status, code, message);
  }
  return res;
}

/** A JSON call; resolves with the parsed body (undefined for 204). */
export async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await send(method, path, body);
  return (res.status === 204 ? undefined : await res.json()) as T;
}

export const get = <T>(path: string): Promise<T> => call<T>('GET', path);

/**
 * Downloads a file with the bearer header (a plain link could not carry it) and hands it
 * to the browser as a named download. The bytes are held in memory once, as a Blob.
 */
export async function download(path: string, filename: string): Promise<void> {
  const res = await send('GET', path);
  const blob = await res.blob();
  const href = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = href;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 60_000);
}

/** Base64 of a file's bytes, as the stream-creation body wants them. */
export async function fileToBase64(file: Blob): Promise<string> {
  const bytes = new Uint8Array(await file.arrayBuffer());
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}
