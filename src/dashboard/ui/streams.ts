/**
 * One target's streams: a table sorted and paginated by the server (`sort`, `offset`,
 * `limit` on GET /v1/targets/{id}/streams), so a target with 10,000 streams costs one
 * page per poll; stop/start/delete per stream; new streams from uploaded seed files.
 */
import { call, fileToBase64, get } from './api.js';
import { button, fill, h, link, when } from './dom.js';
import type { Stream, StreamList, Target } from './types.js';
import type { View, ViewContext } from './view.js';

const COLUMNS: Array<{ key: string | null; label: string }> = [
  { key: 'id', label: 'Stream' },
  { key: 'status', label: 'Status' },
  { key: 'frames', label: 'Frames' },
  { key: null, label: 'Core (engine)' },
  { key: null, label: 'Donor' },
  { key: 'error_count', label: 'Errors' },
  { key: 'created_at', label: 'Created' },
  { key: null, label: '' },
];

export function streamsView(ctx: ViewContext, [targetId]: string[]): View {
  const head = h('div', { id: 'target-head' });
  const tableBox = h('div', { id: 'streams' });
  const pager = h('div', { class: 'pager', id: 'pager' });
  let sort = 'id';
  let offset = 0;
  let pageSize = 50;

  const files = h('input', { type: 'file', id: 'seed-files', multiple: true });
  const seedName = h('input', { id: 'seed-name', placeholder: "same as the file's name" });
  const upload = h(
    'form',
    { id: 'upload', class: 'inline-form' },
    h('label', {}, 'Seed files (one stream each) ', files),
    h('label', {}, 'Store each as ', seedName),
    h('button', { type: 'submit' }, 'Add streams'),
  );
  upload.addEventListener('submit', (e) => {
    e.preventDefault();
    (async () => {
      const chosen = [...(files.files ?? [])];
      if (chosen.length === 0) return ctx.status('Choose one or more seed files', true);
      let made = 0;
      for (const f of chosen) {
        const name = seedName.value.trim() || f.name;
        await call('POST', `/v1/targets/${targetId}/streams`, { files: { [name]: await fileToBase64(f) } });
        made++;
        ctx.status(`Added ${made} of ${chosen.length} streams`);
      }
      upload.reset();
      await view.refresh();
    })().catch((err: Error) => ctx.status(err.message, true));
  });

  const sizeSel = h('select', { id: 'page-size' }, ...[25, 50, 100, 500].map((n) => h('option', { value: n }, `${n} per page`)));
  sizeSel.value = String(pageSize);
  sizeSel.addEventListener('change', () => {
    pageSize = Number(sizeSel.value);
    offset = 0;
    void view.refresh().catch((err: Error) => ctx.status(err.message, true));
  });

  const act = (s: Stream, what: 'stop' | 'start' | 'delete') => async (): Promise<void> => {
    if (what === 'delete') await call('DELETE', `/v1/streams/${s.id}`);
    else await call('POST', `/v1/streams/${s.id}/${what}`);
    ctx.status(`${what === 'stop' ? 'Stopped' : what === 'start' ? 'Started' : 'Deleted'} stream ${s.id}`);
    await view.refresh();
  };

  function header(): HTMLTableSectionElement {
    return h(
      'thead',
      {},
      h(
        'tr',
        {},
        ...COLUMNS.map((c) => {
          if (!c.key) return h('th', {}, c.label);
          const active = sort === c.key || sort === `-${c.key}`;
          const arrow = !active ? '' : sort.startsWith('-') ? ' ▼' : ' ▲';
          return h(
            'th',
            { 'aria-sort': !active ? 'none' : sort.startsWith('-') ? 'descending' : 'ascending' },
            h(
              'button',
              {
                type: 'button',
                class: 'sort',
                'data-sort': c.key,
                onclick: () => {
                  sort = sort === c.key ? `-${c.key}` : c.key!;
                  offset = 0;
                  void view.refresh().catch((err: Error) => ctx.status(err.message, true));
                },
              },
              c.label + arrow,
            ),
          );
        }),
      ),
    );
  }

  // One load at a time: a click (sort, page) during a poll's load asks for one more load after
  // it instead of a second concurrent one, so a slow database is never queried twice at once.
  let inflight: Promise<void> | undefined;
  let again = false;
  const refresh = (): Promise<void> => {
    if (inflight) {
      again = true;
      return inflight;
    }
    inflight = (async () => {
      try {
        do {
          again = false;
          await load();
        } while (again);
      } finally {
        inflight = undefined;
      }
    })();
    return inflight;
  };

  async function load(): Promise<void> {
    const [t, list] = await Promise.all([get<Target>(`/v1/targets/${targetId}`), get<StreamList>(`/v1/targets/${targetId}/streams?sort=${encodeURIComponent(sort)}&offset=${offset}&limit=${pageSize}`)]);
    const total = list.total ?? list.streams.length;
    if (offset >= total && offset > 0) {
      offset = Math.max(0, Math.floor((total - 1) / pageSize) * pageSize);
      again = true;
      return;
    }
    fill(
      head,
      h('h1', {}, 'Target ', h('code', {}, t.id)),
      h('p', {}, `Owner ${t.owner} · stage ${t.stage} · weight ${t.weight} · engines ${t.engines.join(', ')}`),
      t.streams && h('p', {}, `Streams: ${t.streams.ok} ok, ${t.streams.stopped} stopped, ${t.streams.failed} failed`),
      h('p', {}, 'Options ', h('code', { class: 'options' }, JSON.stringify(t.options))),
    );
    const rows = list.streams.map((s) =>
      h(
        'tr',
        { 'data-stream': s.id, 'data-status': s.status },
        h('td', {}, link(`/streams/${s.id}`, s.id)),
        h('td', { class: `st-${s.status}` }, s.status),
        h('td', {}, s.frames),
        h('td', {}, s.active ? (s.engine ?? 'yes') : ''),
        h('td', {}, s.donor ?? ''),
        h('td', {}, s.error_count),
        h('td', {}, when(s.created_at)),
        h(
          'td',
          { class: 'actions' },
          s.status === 'ok' ? button('Stop', act(s, 'stop'), ctx.status, { 'data-action': 'stop' }) : button('Start', act(s, 'start'), ctx.status, { 'data-action': 'start' }),
          button('Delete', act(s, 'delete'), ctx.status, { class: 'danger', 'data-action': 'delete' }),
        ),
      ),
    );
    fill(tableBox, h('table', { id: 'stream-table' }, header(), h('tbody', {}, ...rows)));
    const page = (to: number) => () => {
      offset = to;
      void view.refresh().catch((err: Error) => ctx.status(err.message, true));
    };
    fill(
      pager,
      h('button', { type: 'button', id: 'prev', disabled: offset === 0, onclick: page(Math.max(0, offset - pageSize)) }, '‹ Previous'),
      h('span', { id: 'range' }, total === 0 ? 'No streams' : ` ${offset + 1}–${offset + list.streams.length} of ${total} `),
      h('button', { type: 'button', id: 'next', disabled: offset + pageSize >= total, onclick: page(offset + pageSize) }, 'Next ›'),
    );
  }

  const view: View = {
    el: h('section', {}, head, upload, h('h2', {}, 'Streams'), h('div', { class: 'pager-bar' }, sizeSel, pager), tableBox),
    refresh,
  };
  return view;
}
