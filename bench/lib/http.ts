/** A minimal HTTPS client for fixtures: trusts the dev CA, one fresh connection per request. */
import https from 'node:https';

/** A response with its whole body. */
export interface Reply {
  status: number;
  body: Buffer;
  json<T = Record<string, unknown>>(): T;
}

/** One HTTPS request to a 127.0.0.1 URL (the server certificate names localhost). */
export function request(url: string, opts: { method?: string; token?: string; body?: unknown; ca: string; timeoutMs?: number }): Promise<Reply> {
  const u = new URL(url);
  const payload = opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body));
  return new Promise((resolve, reject) => {
    const req = https.request(
      u,
      {
        method: opts.method ?? 'GET',
        ca: opts.ca,
        servername: 'localhost',
        agent: false,
        timeout: opts.timeoutMs ?? 30_000,
        headers: {
          ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
          ...(payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, body, json: <T>() => JSON.parse(body.toString()) as T });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${opts.method ?? 'GET'} ${url}: no answer within ${opts.timeoutMs ?? 30_000} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** Calls the admin API and returns the JSON body; throws unless the status is `expect`. */
export async function api<T = Record<string, unknown>>(base: string, ca: string, method: string, path: string, token: string | undefined, body?: unknown, expect = 200): Promise<T> {
  const r = await request(`${base}${path}`, { method, token, body, ca });
  if (r.status !== expect) throw new Error(`${method} ${path}: expected ${expect}, got ${r.status} ${r.body.toString().slice(0, 300)}`);
  return (r.body.length ? r.json<T>() : {}) as T;
}
