/**
 * Dashboard entry: sign-in, navigation, hash routing and polling. Routes live after `#`, so
 * the server only ever serves one page and the proxy needs no rewrite rules. Live data comes
 * by polling the admin API every {@link POLL_MS} while the tab is visible (docs/dashboard.md
 * says why polling rather than a push channel).
 */
import { ApiError, get, setToken, token } from './api.js';
import { fill, h } from './dom.js';
import type { Me } from './types.js';
import type { View, ViewContext, ViewFactory } from './view.js';
import { overviewView } from './overview.js';
import { targetsView } from './targets.js';
import { streamsView } from './streams.js';
import { streamView } from './stream.js';
import { donorsView } from './donors.js';
import { engineKeysView, nodesView, usersView } from './admin.js';
import { blocksView } from './blocks.js';

/** Poll interval of the live views, in ms. */
export const POLL_MS = 2000;

const ROUTES: Array<{ pattern: RegExp; view: ViewFactory; admin?: boolean }> = [
  { pattern: /^\/?$/, view: overviewView },
  { pattern: /^\/overview$/, view: overviewView },
  { pattern: /^\/targets$/, view: targetsView },
  { pattern: /^\/targets\/([A-Za-z0-9_-]{22})$/, view: streamsView },
  { pattern: /^\/streams\/([A-Za-z0-9_-]{22})$/, view: streamView },
  { pattern: /^\/donors$/, view: donorsView },
  { pattern: /^\/users$/, view: usersView, admin: true },
  { pattern: /^\/keys$/, view: engineKeysView, admin: true },
  { pattern: /^\/nodes$/, view: nodesView, admin: true },
  { pattern: /^\/blocks$/, view: blocksView, admin: true },
];

const root = document.getElementById('app')!;
let current: { view: View; timer?: ReturnType<typeof setTimeout>; stopped: boolean } | undefined;

function signIn(message = ''): void {
  stop();
  const input = h('input', { type: 'password', id: 'token', name: 'token', autocomplete: 'off', placeholder: 'user token', required: true, size: 48 });
  const err = h('p', { class: 'error', id: 'signin-error' }, message);
  const form = h('form', { id: 'signin', class: 'signin' }, h('h1', {}, 'stream-coordinator'), h('label', { for: 'token' }, 'Token'), input, h('button', { type: 'submit' }, 'Sign in'), err);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    setToken(input.value.trim());
    start().catch((e2: Error) => fill(err, e2.message));
  });
  fill(root, form);
  input.focus();
}

function stop(): void {
  if (!current) return;
  current.stopped = true;
  clearTimeout(current.timer);
  current.view.dispose?.();
  current = undefined;
}

function errorPage(main: HTMLElement, err: ApiError): void {
  fill(main, h('section', { class: 'error-page', 'data-status': err.status }, h('h1', {}, `${err.status} ${err.status === 403 ? 'Forbidden' : err.status === 404 ? 'Not found' : 'Error'}`), h('p', {}, err.message)));
}

function render(me: Me): void {
  const statusBar = h('div', { id: 'status', class: 'status', role: 'status' });
  const ctx: ViewContext = {
    me,
    status: (message, error = false) => {
      statusBar.className = error ? 'status error' : 'status';
      statusBar.textContent = message;
    },
    go: (route) => {
      location.hash = route;
    },
  };
  const nav = h(
    'nav',
    {},
    h('a', { href: '#/overview' }, 'Overview'),
    me.role !== 'donor' && h('a', { href: '#/targets' }, 'Targets'),
    h('a', { href: '#/donors' }, 'Donors'),
    me.role === 'admin' && h('a', { href: '#/users' }, 'Users'),
    me.role === 'admin' && h('a', { href: '#/keys' }, 'Engine keys'),
    me.role === 'admin' && h('a', { href: '#/nodes' }, 'Nodes'),
    me.role === 'admin' && h('a', { href: '#/blocks' }, 'Blocks'),
    h('span', { class: 'who' }, `${me.name} (${me.role})`),
    h('button', {
      type: 'button',
      id: 'signout',
      onclick: () => {
        setToken(null);
        signIn();
      },
    }, 'Sign out'),
  );
  const main = h('main', { id: 'main' });
  fill(root, h('header', {}, nav), statusBar, main);

  const route = (): void => {
    stop();
    ctx.status('');
    const path = location.hash.replace(/^#/, '');
    const r = ROUTES.find((x) => x.pattern.test(path));
    if (!r || (r.admin && me.role !== 'admin')) {
      errorPage(main, new ApiError(r ? 403 : 404, r ? 'forbidden' : 'not_found', r ? 'This page is for admins.' : `No page ${path}`));
      return;
    }
    const params = path.match(r.pattern)!.slice(1);
    const view = r.view(ctx, params);
    fill(main, view.el);
    const state: NonNullable<typeof current> = { view, stopped: false };
    current = state;
    const tick = async (): Promise<void> => {
      if (state.stopped) return;
      if (document.visibilityState === 'visible') {
        try {
          await view.refresh();
          main.dataset.loaded = 'true';
        } catch (err) {
          if (state.stopped) return;
          if (err instanceof ApiError && err.status === 401) return signIn('The token was refused; sign in again.');
          if (err instanceof ApiError && (err.status === 403 || err.status === 404)) {
            // No data of a page the caller may not see stays on screen, and polling stops.
            stop();
            errorPage(main, err);
            return;
          }
          ctx.status(`Refresh failed: ${(err as Error).message}`, true);
        }
      }
      if (!state.stopped) state.timer = setTimeout(() => void tick(), POLL_MS);
    };
    void tick();
  };
  window.onhashchange = route;
  route();
}

async function start(): Promise<void> {
  if (!token()) return signIn();
  try {
    render(await get<Me>('/v1/me'));
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      setToken(null);
      return signIn('The token was refused.');
    }
    throw err;
  }
}

start().catch((err: Error) => signIn(err.message));
