/**
 * Assignments one after the other, each on a fresh TLS WebSocket from this process: the time
 * from sending `assign` to receiving the assignment (the server's assignment path alone:
 * queue pop and lease in Redis, stream manifest, seed and checkpoint files from the store),
 * with no other load. Sockets stay open until the end so every assignment takes a new stream.
 */
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { SUBPROTOCOL } from '../../src/core/protocol';

/** What the probe saw. */
export interface ProbeResult {
  assignMs: number[];
  /** Bytes of each assignment message (JSON, files base64). */
  messageBytes: number[];
  /** File names and decoded sizes of the first assignment (to show what was handed out). */
  firstFiles: Record<string, number>;
  failures: Record<string, number>;
}

function once(url: string, key: string, ca: string, timeoutMs: number): Promise<{ ws: WebSocket; ms?: number; bytes?: number; files?: Record<string, number>; reason?: string }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, [SUBPROTOCOL], { headers: { authorization: `Bearer ${key}` }, ca, servername: 'localhost', perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 } as WebSocket.ClientOptions);
    let sent = 0;
    const timer = setTimeout(() => resolve({ ws, reason: 'timeout' }), timeoutMs);
    const done = (r: { ms?: number; bytes?: number; files?: Record<string, number>; reason?: string }): void => {
      clearTimeout(timer);
      ws.removeAllListeners('message');
      resolve({ ws, ...r });
    };
    ws.on('message', (data: Buffer) => {
      if (!sent) {
        sent = performance.now();
        ws.send('{"type":"assign","id":1}');
        return;
      }
      const ms = performance.now() - sent;
      const m = JSON.parse(data.toString()) as { type: string; code?: string; files?: Record<string, string> };
      if (m.type !== 'assignment') return done({ reason: m.type === 'error' ? `error ${m.code}` : `unexpected ${m.type}` });
      done({ ms, bytes: data.length, files: Object.fromEntries(Object.entries(m.files ?? {}).map(([k, v]) => [k, Buffer.byteLength(v, 'base64')])) });
    });
    ws.on('error', (e: NodeJS.ErrnoException) => done({ reason: e.code ?? e.message.slice(0, 60) }));
    ws.on('close', (code) => done({ reason: `closed ${code}` }));
  });
}

/** Runs `count` assignments in sequence against `url` (wss://…/core/v1). */
export async function probeAssignments(url: string, key: string, ca: string, count: number, timeoutMs = 30_000): Promise<ProbeResult> {
  const out: ProbeResult = { assignMs: [], messageBytes: [], firstFiles: {}, failures: {} };
  const open: WebSocket[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const r = await once(url, key, ca, timeoutMs);
      open.push(r.ws);
      r.ws.on('error', () => undefined);
      if (r.reason) {
        out.failures[r.reason] = (out.failures[r.reason] ?? 0) + 1;
        continue;
      }
      out.assignMs.push(r.ms!);
      out.messageBytes.push(r.bytes!);
      if (out.assignMs.length === 1) out.firstFiles = r.files!;
    }
  } finally {
    for (const ws of open) ws.terminate();
  }
  return out;
}
