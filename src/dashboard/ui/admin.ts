/**
 * Admin pages: users (create shows the token once), engine keys (create shows the key once;
 * revoke) and coordinator nodes.
 */
import { call, get } from './api.js';
import { button, fill, h, table, when } from './dom.js';
import type { EngineKeys, Nodes, Users } from './types.js';
import type { View, ViewContext } from './view.js';

/** A secret shown once, in a read-only field the admin can copy; it is never stored by the page. */
function secret(label: string, value: string): HTMLElement {
  const field = h('input', { class: 'secret', id: 'secret', readonly: true, size: 50 });
  field.value = value;
  return h('div', { class: 'once' }, h('p', {}, `${label} — shown once, copy it now:`), field);
}

export function usersView(ctx: ViewContext): View {
  const box = h('div', { id: 'users' });
  const shown = h('div', { id: 'shown' });
  const name = h('input', { id: 'user-name', required: true, pattern: '[A-Za-z0-9][A-Za-z0-9._-]{0,63}' });
  const role = h('select', { id: 'user-role' }, h('option', { value: 'manager' }, 'manager'), h('option', { value: 'admin' }, 'admin'));
  const form = h('form', { class: 'inline-form', id: 'create-user' }, h('label', {}, 'Name ', name), h('label', {}, 'Role ', role), h('button', { type: 'submit' }, 'Create user'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    (async () => {
      const r = await call<{ name: string; token: string }>('POST', '/v1/users', { name: name.value, role: role.value });
      fill(shown, secret(`Token of ${r.name}`, r.token));
      form.reset();
      await view.refresh();
    })().catch((err: Error) => ctx.status(err.message, true));
  });
  const view: View = {
    el: h('section', {}, h('h1', {}, 'Users'), form, shown, box),
    async refresh() {
      const { users } = await get<Users>('/v1/users');
      fill(
        box,
        table(
          ['Name', 'Role', 'Weight', 'Created', ''],
          users.map((u) => [
            u.name,
            u.role,
            u.weight,
            when(u.created_at),
            h(
              'span',
              { class: 'actions' },
              button('New token', async () => fill(shown, secret(`New token of ${u.name}`, (await call<{ token: string }>('POST', `/v1/users/${encodeURIComponent(u.name)}/token`)).token)), ctx.status),
              u.name !== ctx.me.name && button('Delete', async () => void (await call('DELETE', `/v1/users/${encodeURIComponent(u.name)}`), await view.refresh()), ctx.status, { class: 'danger' }),
            ),
          ]),
        ),
      );
    },
  };
  return view;
}

export function engineKeysView(ctx: ViewContext): View {
  const box = h('div', { id: 'keys' });
  const shown = h('div', { id: 'shown' });
  const engine = h('input', { id: 'key-engine', required: true, pattern: '[a-z0-9][a-z0-9_.-]{0,63}', placeholder: 'openmm' });
  const description = h('input', { id: 'key-description', maxlength: 1000 });
  const form = h('form', { class: 'inline-form', id: 'create-key' }, h('label', {}, 'Engine ', engine), h('label', {}, 'Description ', description), h('button', { type: 'submit' }, 'Create key'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    (async () => {
      const r = await call<{ id: string; engine: string; key: string }>('POST', '/v1/engine-keys', { engine: engine.value, description: description.value });
      fill(shown, secret(`Engine key ${r.id} for ${r.engine}`, r.key));
      form.reset();
      await view.refresh();
    })().catch((err: Error) => ctx.status(err.message, true));
  });
  const view: View = {
    el: h('section', {}, h('h1', {}, 'Engine keys'), form, shown, box),
    async refresh() {
      const keys = (await get<EngineKeys>('/v1/engine-keys')).engine_keys;
      fill(
        box,
        table(
          ['Id', 'Engine', 'Description', 'Created', 'Revoked', ''],
          keys.map((k) => [
            h('code', {}, k.id),
            k.engine,
            k.description,
            when(k.created_at),
            when(k.revoked_at),
            !k.revoked_at && button('Revoke', async () => void (await call('DELETE', `/v1/engine-keys/${k.id}`), await view.refresh()), ctx.status, { class: 'danger', 'data-key': k.id }),
          ]),
          { id: 'key-table' },
        ),
      );
    },
  };
  return view;
}

export function nodesView(): View {
  const box = h('div', { id: 'nodes' });
  return {
    el: h('section', {}, h('h1', {}, 'Nodes'), box),
    async refresh() {
      const { nodes } = await get<Nodes>('/v1/nodes');
      fill(
        box,
        table(
          ['Node', 'Host', 'PID', 'Worker', 'Release', 'URL', 'Started', 'Seen', 'Sessions', 'By engine'],
          nodes.map((n) => [
            n.node,
            n.host,
            n.pid,
            n.worker,
            // During a rolling upgrade: which release each process runs, and the stored shapes it knows.
            n.version ? `${n.version} (store ${n.store_schema ?? 1})` : 'earlier',
            n.url ?? '',
            when(n.started_at),
            when(n.seen_at),
            n.sessions,
            Object.entries(n.sessions_by_engine).map(([e, c]) => `${e}: ${c}`).join(', '),
          ]),
          { id: 'node-table' },
        ),
      );
    },
  };
}
