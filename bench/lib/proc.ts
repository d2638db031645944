/**
 * Readers of /proc (Linux): process trees, resident memory (VmRSS) and CPU time
 * (utime + stime), so a benchmark can measure a group of server processes from outside.
 */
import fs from 'node:fs';
import { sleep } from './stats';

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ; 100 on Linux x86). */
export const CLK_TCK = 100;

function readStat(pid: number): string[] | undefined {
  try {
    const raw = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 2 (comm) is in parentheses and may contain spaces: split after the last ')'.
    const rest = raw.slice(raw.lastIndexOf(')') + 2).split(' ');
    return rest; // rest[0] is field 3 (state)
  } catch {
    return undefined;
  }
}

/** Parent pid of a process, or undefined when it is gone. */
export function parentPid(pid: number): number | undefined {
  const f = readStat(pid);
  return f ? Number(f[1]) : undefined;
}

/** The process and all its descendants (alive now). */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    const ppid = parentPid(pid);
    if (ppid === undefined) continue;
    const list = children.get(ppid);
    if (list) list.push(pid);
    else children.set(ppid, [pid]);
  }
  const out: number[] = [];
  const walk = (pid: number): void => {
    if (readStat(pid) === undefined) return;
    out.push(pid);
    for (const c of children.get(pid) ?? []) walk(c);
  };
  walk(root);
  return out;
}

/** VmRSS of a process in KiB (0 when it is gone). */
export function rssKiB(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** utime + stime of a process in milliseconds (0 when it is gone). */
export function cpuMs(pid: number): number {
  const f = readStat(pid);
  if (!f) return 0;
  // Fields 14 and 15 (utime, stime) are at rest[11] and rest[12].
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
}

/** Sum of VmRSS (KiB) over the pids. */
export function sumRssKiB(pids: number[]): number {
  return pids.reduce((n, p) => n + rssKiB(p), 0);
}

/**
 * The servers' RSS once they have settled with no session: read after `settleS` seconds, the
 * minimum of the readings of the last 5 (one a second). A process just started still holds
 * what start-up freed: glibc until its first malloc_trim (server.mallocTrimIntervalS, 10 s),
 * jemalloc until its decay (10 s), the Go runtime until its scavenger; 5–15 MiB per process
 * that the end-of-hold reading no longer has, which would make held sessions look cheaper.
 */
export async function settledRssKiB(memoryKiB: () => number, settleS: number): Promise<number> {
  const last: number[] = [];
  for (let i = 0; i < settleS; i++) {
    await sleep(1000);
    last.push(memoryKiB());
    if (last.length > 5) last.shift();
  }
  return last.length === 0 ? memoryKiB() : Math.min(...last);
}

/** Sum of CPU milliseconds over the pids. */
export function sumCpuMs(pids: number[]): number {
  return pids.reduce((n, p) => n + cpuMs(p), 0);
}

/** Open file descriptors of a process (count of /proc/<pid>/fd entries). */
export function openFds(pid: number): number {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}

/**
 * CPU accounting of a fixed set of pids over a window: `start()` then `stop()`. Processes
 * that exit in between lose their time (a server group does not exit mid-measurement).
 */
export class CpuWindow {
  private before = new Map<number, number>();
  constructor(private readonly pids: () => number[]) {}
  start(): void {
    this.before = new Map(this.pids().map((p) => [p, cpuMs(p)]));
  }
  /** CPU milliseconds used since start() by the pids alive now. */
  stop(): number {
    let total = 0;
    for (const p of this.pids()) total += cpuMs(p) - (this.before.get(p) ?? 0);
    return total;
  }
}

/**
 * Waits until the pids use less than `busyShare` of one CPU over a `windowMs` window (a
 * server settling the sessions a phase just closed, say), at most `maxMs`. Returns how long
 * it waited and whether they went idle.
 */
export async function settle(pids: () => number[], o: { windowMs?: number; busyShare?: number; maxMs?: number } = {}): Promise<{ waitedMs: number; idle: boolean }> {
  const windowMs = o.windowMs ?? 500;
  const busyShare = o.busyShare ?? 0.05;
  const t0 = performance.now();
  const deadline = t0 + (o.maxMs ?? 30_000);
  while (performance.now() < deadline) {
    const before = sumCpuMs(pids());
    await new Promise((r) => setTimeout(r, windowMs));
    if (sumCpuMs(pids()) - before < busyShare * windowMs) return { waitedMs: Math.round(performance.now() - t0), idle: true };
  }
  return { waitedMs: Math.round(performance.now() - t0), idle: false };
}

/** What {@link holdIdle} measured over the hold. */
export interface HoldFigures {
  /** CPU of the pids over the hold, in % of one core. */
  idleCpuPct: number;
  /** Their summed RSS at the end of the hold, KiB. */
  rssAfterKiB: number;
  /** The mean of their summed RSS read once a second through the hold, KiB. */
  rssMeanKiB: number;
}

/**
 * Waits `holdS` seconds while the sessions sit idle, reading the pids' CPU over the whole
 * hold and their RSS once a second: one reading at the end moves with the process's own
 * cycles (a GC, a malloc trim), the mean much less.
 */
export async function holdIdle(pids: () => number[], holdS: number, memoryKiB = (): number => sumRssKiB(pids())): Promise<HoldFigures> {
  const cpu = new CpuWindow(pids);
  cpu.start();
  const t0 = Date.now();
  const samples: number[] = [];
  while (Date.now() - t0 < holdS * 1000) {
    await new Promise((r) => setTimeout(r, Math.min(1000, holdS * 1000 - (Date.now() - t0))));
    samples.push(memoryKiB());
  }
  const idleCpuPct = (cpu.stop() / Math.max(1, Date.now() - t0)) * 100;
  const rssAfterKiB = memoryKiB();
  return { idleCpuPct, rssAfterKiB, rssMeanKiB: samples.reduce((a, b) => a + b, 0) / Math.max(1, samples.length) };
}
