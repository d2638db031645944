/** Summaries of V8 CPU profiles (--cpu-prof): self time by function, per profile directory. */
import fs from 'node:fs';
import path from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

function files(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...files(p));
    else if (e.name.endsWith('.cpuprofile')) out.push(p);
  }
  return out;
}

/** The part of the process a function belongs to, from its script URL. */
export function category(url: string, fn: string): string {
  if (fn === '(idle)') return 'idle (incl. native code outside JS, e.g. uWS/OpenSSL)';
  if (fn === '(garbage collector)') return 'garbage collector';
  if (/node_modules\/(mongodb|bson|mongodb-connection-string-url)\//.test(url)) return 'mongodb driver + bson';
  if (/node_modules\/(ioredis|@ioredis|redis-parser|denque|cluster-key-slot)\//.test(url)) return 'ioredis';
  if (/node_modules\/ws\//.test(url)) return 'ws';
  if (/node_modules\/(pino|pino-std-serializers|sonic-boom|thread-stream|atomic-sleep|fast-redact|quick-format-unescaped)\//.test(url)) return 'pino (logging)';
  if (/node_modules\/prom-client\//.test(url)) return 'prom-client';
  if (/node_modules\//.test(url)) return 'other packages';
  if (/\/dist\/src\//.test(url)) return 'product code (dist/src)';
  if (/\/dist\/bench\//.test(url)) return 'bench code';
  if (/^node:/.test(url)) return 'node core (net, tls, http, streams, events)';
  return fn.startsWith('(') ? fn : 'native calls from JS (socket writes, crypto, …)';
}

/** Self time by function over the profiles of one directory, top `top` lines, then by category. */
export function selfTimes(profiles: string[], top = 25): string[] {
  const self = new Map<string, number>();
  const cats = new Map<string, number>();
  let total = 0;
  for (const f of profiles) {
    const p = JSON.parse(fs.readFileSync(f, 'utf8')) as CpuProfile;
    const byId = new Map(p.nodes.map((n) => [n.id, n]));
    for (let i = 0; i < p.samples.length; i++) {
      const n = byId.get(p.samples[i]!);
      const dt = (p.timeDeltas[i] ?? 0) / 1000;
      if (!n) continue;
      const url = n.callFrame.url.replace(/^file:\/\//, '').replace(/.*\/(node_modules|dist)\//, '$1/');
      const key = `${n.callFrame.functionName || '(anonymous)'} ${url ? `${url}:${n.callFrame.lineNumber + 1}` : ''}`.trim();
      self.set(key, (self.get(key) ?? 0) + dt);
      const cat = category(n.callFrame.url, n.callFrame.functionName);
      cats.set(cat, (cats.get(cat) ?? 0) + dt);
      total += dt;
    }
  }
  const line = ([k, v]: [string, number]): string => `${v.toFixed(0).padStart(8)} ms ${((v / total) * 100).toFixed(1).padStart(5)}%  ${k}`;
  return [
    `total sampled ${total.toFixed(0)} ms over ${profiles.length} profile(s)`,
    'by category:',
    ...[...cats.entries()].sort((a, b) => b[1] - a[1]).map(line),
    `top ${top} functions (self time):`,
    ...[...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, top).map(line),
  ];
}

/** A text summary of every profile directory under `root`. */
export function summarizeProfiles(root: string): string {
  const out: string[] = [];
  for (const e of fs.readdirSync(root, { withFileTypes: true })) {
    if (!e.isDirectory()) continue;
    const list = files(path.join(root, e.name));
    if (list.length === 0) continue;
    out.push(`== ${e.name}`, ...selfTimes(list), '');
  }
  return `${out.join('\n')}\n`;
}
