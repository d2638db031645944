/**
 * DOM building without HTML strings: every text goes in through textContent or an attribute
 * setter, so data from the API (target options, donor names, error messages) can never
 * become markup. No innerHTML anywhere in the dashboard.
 */
export type Child = Node | string | number | null | undefined | false;

/** Creates an element; `attrs` keys starting with `on` add listeners, others set attributes. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, unknown> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v as EventListener);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, ...children);
  return el;
}

export function append(el: Element, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
}

/** Replaces an element's children. */
export function fill(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, ...children);
}

/** A table with a header row; `rows` are lists of cells. */
export function table(headers: Child[], rows: Child[][], attrs: Record<string, unknown> = {}): HTMLTableElement {
  return h(
    'table',
    attrs,
    h('thead', {}, h('tr', {}, ...headers.map((x) => (x instanceof HTMLTableCellElement ? x : h('th', {}, x))))),
    h('tbody', {}, ...rows.map((r) => h('tr', {}, ...r.map((c) => h('td', {}, c))))),
  );
}

/** A short local date-time. */
export function when(iso: string | undefined): string {
  return iso ? new Date(iso).toLocaleString() : '';
}

/** An in-page link to a dashboard route (the part after `#`). */
export function link(route: string, text: Child): HTMLAnchorElement {
  return h('a', { href: `#${route}` }, text);
}

/** A button that runs an async action, showing failures in `status`. */
export function button(label: string, action: () => Promise<void>, status?: (msg: string, error: boolean) => void, attrs: Record<string, unknown> = {}): HTMLButtonElement {
  const b = h('button', { type: 'button', ...attrs }, label);
  b.addEventListener('click', () => {
    b.disabled = true;
    action()
      .catch((err: Error) => status?.(err.message, true))
      .finally(() => {
        b.disabled = false;
      });
  });
  return b;
}
