/**
 * Targets: the caller's targets (all of them for an admin) with stage, weight, engines and
 * stream counts; create, edit (stage, weight, engines, options) and delete.
 */
import { call, get } from './api.js';
import { button, fill, h, link, table } from './dom.js';
import type { Stage, Target, Targets } from './types.js';
import type { View, ViewContext } from './view.js';

const STAGES: Stage[] = ['public', 'beta', 'private', 'disabled'];
/** Targets per page. */
const PAGE = 50;

function stageSelect(value: Stage, id?: string): HTMLSelectElement {
  const s = h('select', { id, name: 'stage' }, ...STAGES.map((st) => h('option', { value: st }, st)));
  s.value = value;
  return s;
}

function engineList(text: string): string[] {
  return text
    .split(/[\s,]+/)
    .map((e) => e.trim())
    .filter(Boolean);
}

function parseOptions(text: string): Record<string, unknown> {
  const v: unknown = text.trim() === '' ? {} : JSON.parse(text);
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('Options must be a JSON object');
  return v as Record<string, unknown>;
}

/** The PATCH options for going from `before` to `after`: changed keys set, removed keys null (the API merges key by key). */
function optionsPatch(before: Record<string, unknown>, after: Record<string, unknown>): Record<string, unknown> {
  const patch: Record<string, unknown> = {};
  for (const k of Object.keys(before)) if (!(k in after)) patch[k] = null;
  for (const [k, v] of Object.entries(after)) if (JSON.stringify(before[k]) !== JSON.stringify(v)) patch[k] = v;
  return patch;
}

export function targetsView(ctx: ViewContext): View {
  const listBox = h('div', { id: 'targets' });
  const editBox = h('div', { id: 'target-edit' });
  const engines = h('input', { id: 'new-engines', placeholder: 'openmm, gromacs', required: true });
  const stage = stageSelect('private', 'new-stage');
  const weight = h('input', { id: 'new-weight', type: 'number', min: '0.001', step: 'any', value: '1' });
  const options = h('textarea', { id: 'new-options', rows: 3, cols: 50, placeholder: '{"steps_per_frame": 50000}' });
  const create = h(
    'form',
    { id: 'create-target', class: 'inline-form' },
    h('label', {}, 'Engines ', engines),
    h('label', {}, 'Stage ', stage),
    h('label', {}, 'Weight ', weight),
    h('label', {}, 'Options (JSON) ', options),
    h('button', { type: 'submit' }, 'Create target'),
  );
  create.addEventListener('submit', (e) => {
    e.preventDefault();
    (async () => {
      const r = await call<{ target_id: string }>('POST', '/v1/targets', { engines: engineList(engines.value), stage: stage.value, weight: Number(weight.value), options: parseOptions(options.value) });
      ctx.status(`Created target ${r.target_id}`);
      create.reset();
      await view.refresh();
    })().catch((err: Error) => ctx.status(err.message, true));
  });

  function edit(t: Target): void {
    const st = stageSelect(t.stage, 'edit-stage');
    const w = h('input', { id: 'edit-weight', type: 'number', min: '0.001', step: 'any', value: String(t.weight) });
    const en = h('input', { id: 'edit-engines', value: t.engines.join(', ') });
    const op = h('textarea', { id: 'edit-options', rows: 6, cols: 60 });
    op.value = JSON.stringify(t.options, null, 2);
    const form = h(
      'form',
      { class: 'edit-form' },
      h('h2', {}, 'Edit target ', h('code', {}, t.id)),
      h('label', {}, 'Stage ', st),
      h('label', {}, 'Weight ', w),
      h('label', {}, 'Engines ', en),
      h('label', {}, 'Options (JSON) ', op),
      h('button', { type: 'submit' }, 'Save'),
      h('button', { type: 'button', onclick: () => fill(editBox) }, 'Cancel'),
    );
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      (async () => {
        const body: Record<string, unknown> = {};
        if (st.value !== t.stage) body.stage = st.value;
        if (Number(w.value) !== t.weight) body.weight = Number(w.value);
        const e2 = engineList(en.value);
        if (e2.join(',') !== t.engines.join(',')) body.engines = e2;
        const patch = optionsPatch(t.options, parseOptions(op.value));
        if (Object.keys(patch).length > 0) body.options = patch;
        if (Object.keys(body).length === 0) return ctx.status('Nothing changed');
        await call('PATCH', `/v1/targets/${t.id}`, body);
        ctx.status(`Saved target ${t.id}`);
        fill(editBox);
        await view.refresh();
      })().catch((err: Error) => ctx.status(err.message, true));
    });
    fill(editBox, form);
  }

  const confirmDelete = new Set<string>();
  const pager = h('div', { class: 'pager-bar', id: 'target-pager' });
  let offset = 0;
  const view: View = {
    el: h('section', {}, h('h1', {}, 'Targets'), ctx.me.role === 'manager' ? create : h('p', { class: 'hint' }, 'Targets are created by managers.'), editBox, pager, listBox),
    async refresh() {
      const { targets } = await get<Targets>('/v1/targets');
      // Stream counts come with the single-target view (cached server-side for polling).
      // ...one call per target, so only for the page shown (an admin may see hundreds of targets).
      offset = Math.min(offset, Math.max(0, Math.floor((targets.length - 1) / PAGE) * PAGE));
      const full = await Promise.all(targets.slice(offset, offset + PAGE).map((t) => get<Target>(`/v1/targets/${t.id}`)));
      const turn = (to: number) => () => {
        offset = to;
        void view.refresh().catch((err: Error) => ctx.status(err.message, true));
      };
      fill(
        pager,
        targets.length > PAGE && h('button', { type: 'button', disabled: offset === 0, onclick: turn(Math.max(0, offset - PAGE)) }, '‹ Previous'),
        targets.length > PAGE && ` ${offset + 1}–${offset + full.length} of ${targets.length} `,
        targets.length > PAGE && h('button', { type: 'button', disabled: offset + PAGE >= targets.length, onclick: turn(offset + PAGE) }, 'Next ›'),
      );
      fill(
        listBox,
        full.length === 0
          ? 'No targets yet.'
          : table(
              ['Target', 'Owner', 'Stage', 'Weight', 'Engines', 'Streams ok / stopped / failed', 'Frames committed', 'Options', ''],
              full.map((t) => [
                link(`/targets/${t.id}`, t.id),
                t.owner,
                t.stage,
                t.weight,
                t.engines.join(', '),
                t.streams ? `${t.streams.ok} / ${t.streams.stopped} / ${t.streams.failed}` : '',
                t.streams ? String(t.streams.frames) : '',
                h('code', { class: 'options' }, JSON.stringify(t.options)),
                h(
                  'span',
                  { class: 'actions' },
                  button('Edit', async () => edit(t), ctx.status),
                  button(
                    confirmDelete.has(t.id) ? 'Confirm delete' : 'Delete',
                    async () => {
                      // Two clicks instead of a confirm() dialog, which would block polling.
                      if (!confirmDelete.has(t.id)) {
                        confirmDelete.add(t.id);
                        return view.refresh();
                      }
                      confirmDelete.delete(t.id);
                      await call('DELETE', `/v1/targets/${t.id}`);
                      ctx.status(`Deleted target ${t.id}`);
                      await view.refresh();
                    },
                    ctx.status,
                    { class: 'danger' },
                  ),
                ),
              ]),
              { id: 'target-table' },
            ),
      );
    },
  };
  return view;
}
