/**
 * V8 heap snapshots (`--heapsnapshot-signal`) of a server process, summarized as self size by
 * kind of object, and the difference of two such summaries per unit (e.g. per session held
 * between them). A snapshot is the heap as V8 sees it: JavaScript objects, strings and
 * numbers, not malloc'd memory (TLS, uWS sockets), which RSS shows.
 */
import fs from 'node:fs';
import path from 'node:path';
import { sleep } from './stats';

/** Self size and count of one kind of heap object. */
export interface HeapKind {
  /** `<node type> <constructor or name>`; strings, numbers and code are one kind each. */
  kind: string;
  bytes: number;
  count: number;
}

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/** Node types whose names are values (text, numbers) or code, not constructors: one kind each. */
const VALUE_TYPES = new Set(['string', 'concatenated string', 'sliced string', 'number', 'code', 'regexp']);

/** Self size by kind, largest first. */
export function summarize(file: string): HeapKind[] {
  const s = JSON.parse(fs.readFileSync(file, 'utf8')) as Snapshot;
  const fields = s.snapshot.meta.node_fields;
  const types = s.snapshot.meta.node_types[0];
  const width = fields.length;
  const [ti, ni, si] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f)) as [number, number, number];
  const kinds = new Map<string, HeapKind>();
  for (let i = 0; i < s.nodes.length; i += width) {
    const type = types[s.nodes[i + ti]!]!;
    const kind = VALUE_TYPES.has(type) ? type : `${type} ${s.strings[s.nodes[i + ni]!]!.slice(0, 60)}`;
    const k = kinds.get(kind) ?? { kind, bytes: 0, count: 0 };
    k.bytes += s.nodes[i + si]!;
    k.count += 1;
    kinds.set(kind, k);
  }
  return [...kinds.values()].sort((a, b) => b.bytes - a.bytes);
}

/** `after − before` per unit, by kind; kinds that moved by less than `minBytes` per unit are left out. */
export function perUnit(before: HeapKind[], after: HeapKind[], units: number, minBytes = 4): { total: number; kinds: HeapKind[] } {
  const base = new Map(before.map((k) => [k.kind, k]));
  const kinds: HeapKind[] = [];
  let total = 0;
  for (const k of after) {
    const b = base.get(k.kind);
    base.delete(k.kind);
    const bytes = (k.bytes - (b?.bytes ?? 0)) / units;
    total += bytes;
    if (Math.abs(bytes) >= minBytes) kinds.push({ kind: k.kind, bytes, count: (k.count - (b?.count ?? 0)) / units });
  }
  for (const b of base.values()) total -= b.bytes / units;
  return { total, kinds: kinds.sort((a, b) => b.bytes - a.bytes) };
}

/**
 * Signals `pid` (started with `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=dir`) and
 * waits for the new snapshot in `dir`: it is complete once its size stops changing and the
 * process, which writes it synchronously, answers `alive()` again.
 */
export async function takeSnapshot(pid: number, dir: string, alive: () => Promise<unknown>, timeoutMs = 120_000): Promise<string> {
  const before = new Set(fs.readdirSync(dir));
  process.kill(pid, 'SIGUSR2');
  const end = Date.now() + timeoutMs;
  for (let last = -1; Date.now() < end; await sleep(500)) {
    const file = fs.readdirSync(dir).find((f) => f.endsWith('.heapsnapshot') && !before.has(f));
    if (!file) continue;
    const size = fs.statSync(path.join(dir, file)).size;
    if (size > 0 && size === last) {
      await alive();
      return path.join(dir, file);
    }
    last = size;
  }
  throw new Error(`no heap snapshot of ${pid} in ${dir} after ${timeoutMs} ms`);
}
