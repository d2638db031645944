/** Result rows, the results JSON and the markdown table. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fmt, ratio } from './stats';
import { FERRETDB_BUILD } from '../../src/provision/ferretdb';
import type { Stack } from '../../src/provision/stack';

/** One figure measured for both transports in the same run. */
export interface Row {
  bench: string;
  metric: string;
  unit: string;
  uws: number;
  node: number;
  /** uws / node. */
  ratio: number;
  /** Which direction is better, for reading the ratio. */
  better: 'higher' | 'lower' | 'info';
  /** The goal this row is checked against, in words. */
  goal?: string;
  /** Whether the goal is met (undefined: no goal on this row). */
  met?: boolean;
}

/** A row with the ratio computed. */
export function row(bench: string, metric: string, unit: string, uws: number, node: number, better: Row['better'], goal?: { text: string; met: boolean }): Row {
  return { bench, metric, unit, uws, node, ratio: ratio(uws, node), better, ...(goal ? { goal: goal.text, met: goal.met } : {}) };
}

/** What one benchmark returns. */
export interface BenchResult {
  name: string;
  rows: Row[];
  /** Settings and raw figures, for the JSON file. */
  details: Record<string, unknown>;
  /** Lines for the notes under the table. */
  notes: string[];
  elapsedS: number;
  error?: string;
}

/** Everything a run writes. */
export interface RunResults {
  startedAt: string;
  finishedAt?: string;
  mode: 'quick' | 'full';
  elapsedS?: number;
  machine: Record<string, unknown>;
  store: Record<string, unknown>;
  /** Replaces the sentence above the table (for runs that are not a uws/node comparison). */
  intro?: string;
  benches: BenchResult[];
}

function cell(v: number, unit: string): string {
  return Number.isNaN(v) ? '–' : `${fmt(v)}${unit && unit !== 'count' ? ` ${unit}` : ''}`;
}

/** The markdown report. */
export function markdown(r: RunResults): string {
  const out: string[] = [];
  out.push(`# stream-coordinator benchmarks — ${r.mode} run, ${r.startedAt}`);
  out.push('');
  out.push(`Machine: ${Object.entries(r.machine).map(([k, v]) => `${k} ${String(v)}`).join(', ')}.`);
  out.push(`Store: ${Object.entries(r.store).map(([k, v]) => `${k} ${String(v)}`).join(', ')}.`);
  if (r.elapsedS !== undefined) out.push(`Run time: ${fmt(r.elapsedS)} s.`);
  out.push('');
  out.push(r.intro ?? 'uws and node ran one after the other on identical work in this run; the ratio is uws/node (for "lower is better" figures a ratio below 1 favours uws).');
  out.push('');
  out.push('| bench | metric | uws | node | uws/node | better | goal | met |');
  out.push('|---|---|---:|---:|---:|---|---|---|');
  for (const b of r.benches) {
    if (b.error) out.push(`| ${b.name} | **failed**: ${b.error.split('\n')[0]!.replace(/\|/g, '\\|').slice(0, 200)} | | | | | | |`);
    for (const x of b.rows) {
      out.push(`| ${x.bench} | ${x.metric.replace(/\|/g, '\\|')} | ${cell(x.uws, x.unit)} | ${cell(x.node, x.unit)} | ${Number.isNaN(x.ratio) ? '–' : fmt(x.ratio)} | ${x.better} | ${x.goal ?? ''} | ${x.met === undefined ? '' : x.met ? 'yes' : '**no**'} |`);
    }
  }
  out.push('');
  for (const b of r.benches) {
    out.push(`## ${b.name} (${fmt(b.elapsedS)} s)`);
    out.push('');
    for (const n of b.notes) out.push(`- ${n}`);
    if (b.error) out.push(`- error: \`${b.error.split('\n').slice(0, 3).join(' ').slice(0, 500)}\``);
    out.push('');
  }
  return `${out.join('\n')}\n`;
}

/** The machine a run measured, as every report's header names it. */
export function machineOf(): Record<string, unknown> {
  return { cpus: `${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}`, memory: `${Math.round(os.totalmem() / 2 ** 30)} GiB`, node: process.version, kernel: os.release() };
}

/** A run's time as it names its result files: 2026-12-04T11-20-10Z. */
export function stampOf(d: Date): string {
  return d.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
}

/** Where a run writes its results: the `--results-dir` given, else the repository's bench/results. */
export function resultsDir(given?: string): string {
  // From dist/bench/lib to the repository.
  return path.resolve(given ?? path.join(__dirname, '..', '..', '..', 'bench', 'results'));
}

/** Writes `<dir>/<stamp>.json` (the value) and `.md` (the text); returns their paths. */
export function writeResultFiles(dir: string, stamp: string, value: unknown, markdownText: string): { json: string; md: string } {
  fs.mkdirSync(dir, { recursive: true });
  const json = path.join(dir, `${stamp}.json`);
  const md = path.join(dir, `${stamp}.md`);
  fs.writeFileSync(json, `${JSON.stringify(value, null, 2)}\n`);
  fs.writeFileSync(md, markdownText);
  return { json, md };
}

/** Writes `<dir>/<stamp>.json` and `.md` of a run; returns their paths. */
export function writeResults(dir: string, stamp: string, r: RunResults): { json: string; md: string } {
  return writeResultFiles(dir, stamp, r, markdown(r));
}

/**
 * The store a report names: the kind of server and, for FerretDB, its backend and the cache
 * key of the build (which changes with every patch), so two reports say whether they ran on
 * the same store.
 */
export function describeStore(mongoKind: Stack['mongoKind']): string {
  if (mongoKind !== 'ferretdb') return 'mongod, TLS';
  const backend = process.env.SC_STORE_BACKEND === 'postgresql' ? 'PostgreSQL' : 'SQLite';
  return `FerretDB ${FERRETDB_BUILD} (${backend}, patched build), TLS, as npm run dev starts it`;
}
