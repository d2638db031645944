/**
 * Overview: open core sessions by engine and by node, the active streams, frames/s and
 * commits/s charts, and recent stream errors.
 *
 * No API keeps rates over time, so the charts come from a client-side ring buffer: every poll
 * reads /v1/active-streams, whose `progress` counts each target's committed frames and commits
 * so far; the difference between two polls over the time between them is the rate. (The
 * active streams alone would miss every stream assigned and ended between two polls.) The
 * history starts when the page opens and holds the last hour.
 */
import uPlot from './uPlot.esm.js';
import { get } from './api.js';
import { fill, h, link, table, when } from './dom.js';
import type { ActiveCores, ActiveStreams, Nodes, StreamError, StreamErrors, StreamList, Targets } from './types.js';
import type { View, ViewContext } from './view.js';

const HOUR_S = 3600;
/** Recent errors are gathered from several calls; refresh them less often than the live parts. */
const ERRORS_EVERY_MS = 15_000;

interface Sample {
  t: number;
  framesPerS: number;
  commitsPerS: number;
}

/** Kept across view switches so the charts keep their history while the tab stays open. */
const history: Sample[] = [];
type Counts = ActiveStreams['progress'];
let last: { t: number; progress: Counts } | undefined;

/**
 * One sample from a poll: the counts' increase since the last read over the time between the
 * two reads (`progress_at`: the server answers from a cache up to a second old, and each
 * process from its own).
 */
function record(active: ActiveStreams): void {
  // A server older than the counts sends none: no sample.
  if (!active.progress || !active.progress_at) return;
  const t = Date.parse(active.progress_at) / 1000;
  if (last && t <= last.t) return; // the same read again, or an older one from another process
  // A process whose read lagged another's may show lower counts: keep the higher baseline.
  const baseline: Counts = { ...last?.progress };
  if (last) {
    let frames = 0;
    let commits = 0;
    for (const [target, now] of Object.entries(active.progress)) {
      // A target missing from the last read has no baseline (it may be back with its old
      // counts): it counts from the next read.
      const before = last.progress[target];
      if (!before) continue;
      frames += Math.max(0, now.frames - before.frames);
      commits += Math.max(0, now.commits - before.commits);
    }
    const dt = t - last.t;
    history.push({ t, framesPerS: frames / dt, commitsPerS: commits / dt });
    while (history.length > 0 && history[0]!.t < t - HOUR_S) history.shift();
  }
  for (const [target, now] of Object.entries(active.progress)) {
    const before = baseline[target];
    // Counts far below the baseline are Redis starting again, not a lagging read.
    const restarted = before !== undefined && (now.commits < before.commits / 2 || now.frames < before.frames / 2);
    baseline[target] = before && !restarted ? { frames: Math.max(before.frames, now.frames), commits: Math.max(before.commits, now.commits) } : now;
  }
  last = { t, progress: baseline };
}

function chart(el: HTMLElement, title: string, label: string, pick: (s: Sample) => number): uPlot {
  const width = Math.max(300, el.clientWidth || 600);
  return new uPlot(
    { title, width, height: 180, scales: { x: { time: true } }, series: [{}, { label, stroke: '#2a6fdb', width: 2, fill: 'rgba(42,111,219,0.1)' }], axes: [{}, { size: 60 }] },
    [history.map((s) => s.t), history.map(pick)],
    el,
  );
}

export function overviewView(ctx: ViewContext): View {
  const engines = h('div', { id: 'by-engine' });
  const nodes = h('div', { id: 'by-node' });
  const activeBox = h('div', { id: 'active-streams' });
  const framesEl = h('div', { class: 'chart', id: 'chart-frames' });
  const commitsEl = h('div', { class: 'chart', id: 'chart-commits' });
  const errorsBox = h('div', { id: 'recent-errors' }, 'Loading…');
  const el = h(
    'section',
    { class: 'overview' },
    h('h1', {}, 'Overview'),
    h('div', { class: 'cards' }, h('div', { class: 'card' }, h('h2', {}, 'Sessions by engine'), engines), h('div', { class: 'card' }, h('h2', {}, 'Sessions by node'), nodes)),
    h('div', { class: 'charts' }, framesEl, commitsEl),
    h('p', { class: 'hint' }, 'Rates are computed in this tab from successive polls (history since the page was opened, up to one hour).'),
    h('h2', {}, 'Active streams'),
    activeBox,
    h('h2', {}, 'Recent stream errors'),
    errorsBox,
  );
  let frames: uPlot | undefined;
  let commits: uPlot | undefined;
  let errorsAt = 0;
  const isManager = ctx.me.role !== 'donor';

  async function recentErrors(): Promise<void> {
    const targets = (await get<Targets>('/v1/targets')).targets.slice(0, 20);
    const found: Array<StreamError & { stream: string }> = [];
    for (const t of targets) {
      const worst = (await get<StreamList>(`/v1/targets/${t.id}/streams?sort=-error_count&limit=3`)).streams.filter((s) => s.error_count > 0);
      for (const s of worst) {
        const errs = (await get<StreamErrors>(`/v1/streams/${s.id}/errors`)).errors.slice(0, 5);
        found.push(...errs.map((e) => ({ ...e, stream: s.id })));
      }
    }
    found.sort((a, b) => b.at.localeCompare(a.at));
    fill(
      errorsBox,
      found.length === 0
        ? 'No errors reported.'
        : table(['When', 'Stream', 'Engine', 'Donor', 'Message'], found.slice(0, 20).map((e) => [when(e.at), link(`/streams/${e.stream}`, e.stream), e.engine ?? '', e.donor ?? '', h('span', { class: 'message' }, e.message)])),
    );
  }

  return {
    el,
    async refresh() {
      const cores = await get<ActiveCores>('/v1/active-cores');
      fill(engines, table(['Engine', 'Sessions'], [...Object.entries(cores.engines).map(([e, n]) => [e, n]), [h('strong', {}, 'total'), h('strong', {}, cores.total)]]));
      if (!isManager) {
        fill(nodes, 'Shown to managers and admins.');
        fill(activeBox, '');
        fill(errorsBox, '');
        return;
      }
      const active = await get<ActiveStreams>('/v1/active-streams');
      const rows = Object.entries(active.targets).flatMap(([target, list]) => list.map((a) => ({ target, ...a })));
      record(active);
      if (ctx.me.role === 'admin') {
        const list = (await get<Nodes>('/v1/nodes')).nodes;
        fill(nodes, table(['Node', 'Worker', 'Sessions', 'By engine'], list.map((n) => [n.node, n.worker, n.sessions, Object.entries(n.sessions_by_engine).map(([e, c]) => `${e}: ${c}`).join(', ')])));
      } else {
        const byNode = new Map<string, number>();
        for (const r of rows) byNode.set(r.node, (byNode.get(r.node) ?? 0) + 1);
        fill(nodes, table(['Node', 'Your active streams'], [...byNode].map(([n, c]) => [n, c])));
      }
      fill(
        activeBox,
        rows.length === 0
          ? 'No stream is being worked on.'
          : table(
              ['Target', 'Stream', 'Engine', 'Donor', 'Node', 'Started', 'Buffered', 'Committed frames'],
              rows.map((r) => [link(`/targets/${r.target}`, r.target), link(`/streams/${r.stream_id}`, r.stream_id), r.engine, r.donor ?? '', r.node, when(r.started_at), r.buffered_frames, r.frames]),
              { id: 'active-table' },
            ),
      );
      frames ??= chart(framesEl, 'Frames committed / s', 'frames/s', (s) => s.framesPerS);
      commits ??= chart(commitsEl, 'Commits / s', 'commits/s', (s) => s.commitsPerS);
      frames.setData([history.map((s) => s.t), history.map((s) => s.framesPerS)]);
      commits.setData([history.map((s) => s.t), history.map((s) => s.commitsPerS)]);
      if (Date.now() - errorsAt > ERRORS_EVERY_MS) {
        errorsAt = Date.now();
        await recentErrors();
      }
    },
    dispose() {
      frames?.destroy();
      commits?.destroy();
    },
  };
}
