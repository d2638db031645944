/** One stream: status, partitions, seed/tag/frame files to download, and its error log. */
import { call, download, get } from './api.js';
import { button, fill, h, link, table, when } from './dom.js';
import type { Partitions, Stream, StreamErrors } from './types.js';
import type { View, ViewContext } from './view.js';

/** Partitions listed with per-partition downloads; older ones are reachable through the whole-file download. */
const SHOWN_PARTITIONS = 50;

export function streamView(ctx: ViewContext, [id]: string[]): View {
  const head = h('div', { id: 'stream-head' });
  const filesBox = h('div', { id: 'stream-files' });
  const partsBox = h('div', { id: 'partitions' });
  const errorsBox = h('div', { id: 'stream-errors' });
  const save = (path: string, name: string) => async (): Promise<void> => {
    await download(path, name);
    ctx.status(`Downloaded ${name}`);
  };
  let shownFiles = '';
  const view: View = {
    el: h('section', {}, head, h('h2', {}, 'Files'), filesBox, h('h2', {}, 'Partitions'), partsBox, h('h2', {}, 'Errors'), errorsBox),
    async refresh() {
      const [s, p, e] = await Promise.all([get<Stream>(`/v1/streams/${id}`), get<Partitions>(`/v1/streams/${id}/partitions`), get<StreamErrors>(`/v1/streams/${id}/errors`)]);
      fill(
        head,
        h('h1', {}, 'Stream ', h('code', {}, s.id)),
        h('p', {}, 'Target ', link(`/targets/${s.target_id}`, s.target_id), ` · status ${s.status} · ${s.frames} frames · ${s.error_count} errors · created ${when(s.created_at)}`),
        h('p', {}, s.active ? `Worked on by a ${s.engine ?? ''} core${s.donor ? ` of ${s.donor}` : ''}` : 'No core is working on it.'),
        h(
          'p',
          { class: 'actions' },
          s.status === 'ok'
            ? button('Stop', async () => void (await call('POST', `/v1/streams/${id}/stop`), await view.refresh()), ctx.status, { 'data-action': 'stop' })
            : button('Start', async () => void (await call('POST', `/v1/streams/${id}/start`), await view.refresh()), ctx.status, { 'data-action': 'start' }),
        ),
      );
      // Redrawn only when the file lists change, so a button is never replaced mid-click.
      const key = JSON.stringify([p.seed_files, p.tag_files, p.frame_files, p.checkpoint_files, p.partitions.length]);
      if (key !== shownFiles) {
        shownFiles = key;
        fill(
          filesBox,
          table(
            ['Kind', 'Name', ''],
            [
              ...p.seed_files.map((f) => ['seed', f, button('Download', save(`/v1/streams/${id}/files/${encodeURIComponent(f)}`, f), ctx.status, { 'data-file': f })]),
              ...p.tag_files.map((f) => ['tag', f, button('Download', save(`/v1/streams/${id}/files/${encodeURIComponent(f)}`, f), ctx.status, { 'data-file': f })]),
              ...p.frame_files.map((f) => ['frames (all partitions)', f, button('Download', save(`/v1/streams/${id}/frames/${encodeURIComponent(f)}`, f), ctx.status, { 'data-frames': f })]),
            ],
            { id: 'file-table' },
          ),
        );
        const recent = p.partitions.slice(-SHOWN_PARTITIONS).reverse();
        fill(
          partsBox,
          p.partitions.length === 0
            ? 'Nothing committed yet.'
            : h(
                'div',
                {},
                h('p', {}, `${p.partitions.length} partitions; the last ${recent.length}, newest first:`),
                table(
                  ['Partition (frames up to)', 'Frame files', 'Checkpoint files'],
                  recent.map((n) => [
                    n,
                    h('span', {}, ...p.frame_files.map((f) => button(f, save(`/v1/streams/${id}/partitions/${n}/${encodeURIComponent(f)}`, `${n}-${f}`), ctx.status))),
                    h('span', {}, ...p.checkpoint_files.map((f) => button(f, save(`/v1/streams/${id}/partitions/${n}/checkpoint/${encodeURIComponent(f)}`, `${n}-checkpoint-${f}`), ctx.status))),
                  ]),
                ),
              ),
        );
      }
      fill(errorsBox, e.errors.length === 0 ? 'No errors.' : table(['When', 'Engine', 'Donor', 'Message'], e.errors.map((x) => [when(x.at), x.engine ?? '', x.donor ?? '', h('span', { class: 'message' }, x.message)])));
    },
  };
  return view;
}
