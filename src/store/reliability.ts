/**
 * Reliability records in Redis, as BOINC keeps them: per donor and per client address (IPv4,
 * or IPv6 /64), counts of assignments, commits, stream errors and protocol errors over a
 * sliding window, plus a cooling-off marker.
 *
 * Why Redis: every node must see the same record (a donor's cores spread over nodes), and
 * the counts are hot, small and disposable; MongoDB would take a write per event. Layout:
 * one hash per record and window bucket (`rel:{d:<name>}:<bucket>`, six buckets per
 * window, each expiring one window after it ends), so the window slides without a sweeper
 * and a record nobody touches costs nothing. The hash tag keeps one record's keys in one
 * Redis Cluster slot. Writers batch: callers add to an in-memory tally that is flushed in
 * one pipeline per record every `reliability.refreshMs`, never on the hot path.
 */
import type { RedisClient } from './redis';

/** The counted events. */
export const EVENTS = ['assignments', 'commits', 'stream_errors', 'protocol_errors'] as const;
/** One counted event. */
export type ReliabilityEvent = (typeof EVENTS)[number];
/** What a record is kept per: a donor name, or an address key (see auth/address-key.ts). */
export type RecordKind = 'donor' | 'address';
/** Counts of one record. */
export type Counts = Record<ReliabilityEvent, number>;

/** Buckets per window. */
const BUCKETS = 6;

/** A record's counts and judgement. */
export interface ReliabilityRecord extends Counts {
  kind: RecordKind;
  id: string;
  /** Events judged: assignments + protocol errors counted since the last cooling-off. */
  sample: number;
  /** (stream errors + protocol errors) / sample over the judged part of the window, 0–1. */
  errorRate: number;
  /** When its cooling-off ends (ms epoch), if cooling off now. */
  coolingUntil?: number;
}

/** Judging rules (config reliability.*). */
export interface ReliabilityRules {
  windowS: number;
  errorRatePercent: number;
  minSample: number;
  coolingOffS: number;
}

/** An empty count. */
export function zero(): Counts {
  return { assignments: 0, commits: 0, stream_errors: 0, protocol_errors: 0 };
}

/** Reliability records of the deployment. */
export class ReliabilityStore {
  constructor(private readonly redis: RedisClient, private readonly prefix: string, readonly rules: ReliabilityRules) {}

  private get bucketMs(): number {
    return Math.max(1000, Math.ceil((this.rules.windowS * 1000) / BUCKETS));
  }

  private base(kind: RecordKind, id: string): string {
    return `${this.prefix}rel:{${kind === 'donor' ? 'd' : 'a'}:${id}}`;
  }

  /** Adds batched counts to the current bucket of each record (one pipeline per record). */
  async add(batch: Map<string, { kind: RecordKind; id: string; counts: Counts }>): Promise<void> {
    const bucket = Math.floor(Date.now() / this.bucketMs);
    const ttl = Math.ceil((this.bucketMs * (BUCKETS + 1)) / 1000);
    await Promise.all(
      [...batch.values()].map(({ kind, id, counts }) => {
        const key = `${this.base(kind, id)}:${bucket}`;
        const p = this.redis.pipeline();
        for (const e of EVENTS) if (counts[e] > 0) p.hincrby(key, e, counts[e]);
        p.expire(key, ttl);
        return p.exec();
      }),
    );
  }

  /** Reads and judges a record; starts its cooling-off when it has just passed the threshold. */
  async read(kind: RecordKind, id: string, judge = false): Promise<ReliabilityRecord> {
    const base = this.base(kind, id);
    const now = Date.now();
    const current = Math.floor(now / this.bucketMs);
    const p = this.redis.pipeline();
    for (let b = current - BUCKETS + 1; b <= current; b++) p.hgetall(`${base}:${b}`);
    p.get(`${base}:cool`);
    p.get(`${base}:from`);
    const res = ((await p.exec()) ?? []).map(([err, v]) => (err ? null : v));
    const coolUntil = Number(res[BUCKETS] ?? 0);
    // Buckets before the last cooling-off ended are forgiven when judging (shown in totals).
    const from = Number(res[BUCKETS + 1] ?? 0);
    const total = zero();
    const judged = zero();
    for (let i = 0; i < BUCKETS; i++) {
      const h = (res[i] ?? {}) as Record<string, string>;
      for (const e of EVENTS) {
        const n = Number(h[e] ?? 0);
        total[e] += n;
        if (current - BUCKETS + 1 + i >= from) judged[e] += n;
      }
    }
    const sample = judged.assignments + judged.protocol_errors;
    const errorRate = sample === 0 ? 0 : Math.min(1, (judged.stream_errors + judged.protocol_errors) / sample);
    const record: ReliabilityRecord = { kind, id, ...total, sample, errorRate, ...(coolUntil > now ? { coolingUntil: coolUntil } : {}) };
    if (judge && record.coolingUntil === undefined && sample >= this.rules.minSample && errorRate * 100 > this.rules.errorRatePercent) {
      record.coolingUntil = await this.startCooling(base, now, current);
    }
    return record;
  }

  /** Sets the shared cooling-off marker (first node wins) and forgives the buckets so far. */
  private async startCooling(base: string, now: number, current: number): Promise<number> {
    const until = now + this.rules.coolingOffS * 1000;
    const set = await this.redis.set(`${base}:cool`, String(until), 'PX', this.rules.coolingOffS * 1000, 'NX');
    if (set === 'OK') {
      await this.redis.set(`${base}:from`, String(current + 1), 'PX', (this.rules.coolingOffS + this.rules.windowS) * 1000);
      return until;
    }
    return Number((await this.redis.get(`${base}:cool`)) ?? until);
  }
}
