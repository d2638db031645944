/**
 * The two-level weighted fair share of assignments (PROTOCOL §2 "Assignment"): a manager is
 * drawn with probability proportional to its weight among managers that have a ready
 * stream, then one of its targets proportionally to the target weights. It runs here, in
 * TypeScript, rather than in one Lua script over every candidate's queue: on Redis Cluster
 * each target's queue lives in its own slot, and a script may only touch one slot.
 */

/** A candidate target for one assignment, with the weights of the two-level choice. */
export interface Candidate {
  manager: string;
  managerWeight: number;
  target: string;
  targetWeight: number;
}

/**
 * Draws one candidate by the two-level weighted choice.
 * @param r1 uniform in [0, 1) for the manager draw
 * @param r2 uniform in [0, 1) for the target draw
 * @returns undefined only for an empty list
 */
export function pickFairShare<C extends Candidate>(candidates: readonly C[], r1 = Math.random(), r2 = Math.random()): C | undefined {
  if (candidates.length === 0) return undefined;
  const managers = new Map<string, { weight: number; total: number; targets: C[] }>();
  for (const c of candidates) {
    let m = managers.get(c.manager);
    if (!m) managers.set(c.manager, (m = { weight: c.managerWeight, total: 0, targets: [] }));
    m.targets.push(c);
    m.total += c.targetWeight;
  }
  const list = [...managers.values()];
  let pick = r1 * list.reduce((a, m) => a + m.weight, 0);
  let chosen = list[list.length - 1]!;
  for (const m of list) {
    pick -= m.weight;
    if (pick < 0) {
      chosen = m;
      break;
    }
  }
  let tpick = r2 * chosen.total;
  for (const t of chosen.targets) {
    tpick -= t.targetWeight;
    if (tpick < 0) return t;
  }
  return chosen.targets[chosen.targets.length - 1];
}
