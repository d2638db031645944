/**
 * Admin page: blocks of a donor, an engine key or an address range (`/v1/blocks`), with a
 * reliability-record lookup (`/v1/reliability`) for a donor or an address.
 */
import { call, get } from './api.js';
import { button, fill, h, table, when } from './dom.js';
import type { Blocks, Reliability } from './types.js';
import type { View, ViewContext } from './view.js';


export function blocksView(ctx: ViewContext): View {
  const box = h('div', { id: 'blocks' });
  const record = h('div', { id: 'record' });
  const kind = h('select', { id: 'block-kind' }, h('option', { value: 'donor' }, 'donor'), h('option', { value: 'engine_key' }, 'engine key id'), h('option', { value: 'address' }, 'address range'));
  const value = h('input', { id: 'block-value', required: true, maxlength: 64, placeholder: 'name, key id or 203.0.113.0/24' });
  const reason = h('input', { id: 'block-reason', maxlength: 1000 });
  const form = h('form', { class: 'inline-form', id: 'create-block' }, h('label', {}, 'Kind ', kind), h('label', {}, 'Value ', value), h('label', {}, 'Reason ', reason), h('button', { type: 'submit' }, 'Block'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    (async () => {
      await call('POST', '/v1/blocks', { kind: kind.value, value: value.value, reason: reason.value });
      form.reset();
      await view.refresh();
    })().catch((err: Error) => ctx.status(err.message, true));
  });
  const who = h('input', { id: 'record-query', required: true, maxlength: 64, placeholder: 'donor name or address' });
  const byAddress = h('input', { id: 'record-address', type: 'checkbox' });
  const lookup = h('form', { class: 'inline-form', id: 'lookup-record' }, h('label', {}, 'Record of ', who), h('label', {}, byAddress, ' address'), h('button', { type: 'submit' }, 'Show'));
  lookup.addEventListener('submit', (e) => {
    e.preventDefault();
    (async () => {
      const q = `${byAddress.checked ? 'address' : 'donor'}=${encodeURIComponent(who.value)}`;
      const r = await get<Reliability>(`/v1/reliability?${q}`);
      const rows = (['assignments', 'commits', 'stream_errors', 'protocol_errors', 'error_rate', 'judged_error_rate', 'cooling_until'] as const).map((k) => [k, String(r[k] ?? '')]);
      fill(record, table(['', String(r.id)], rows, { id: 'record-table' }));
    })().catch((err: Error) => ctx.status(err.message, true));
  });
  const view: View = {
    el: h('section', {}, h('h1', {}, 'Blocks'), form, box, h('h2', {}, 'Reliability'), lookup, record),
    async refresh() {
      const { blocks } = await get<Blocks>('/v1/blocks');
      fill(
        box,
        table(
          ['Kind', 'Value', 'Reason', 'By', 'Since', ''],
          blocks.map((b) => [b.kind, h('code', {}, b.value), b.reason, b.created_by, when(b.created_at), button('Unblock', async () => void (await call('DELETE', `/v1/blocks/${b.id}`), await view.refresh()), ctx.status, { class: 'danger', 'data-block': b.id })]),
          { id: 'block-table' },
        ),
      );
    },
  };
  return view;
}
