/** Donors leaderboard (public data; names rendered as text). */
import { get } from './api.js';
import { fill, h, table, when } from './dom.js';
import type { Donors } from './types.js';
import type { View } from './view.js';

export function donorsView(): View {
  const box = h('div', { id: 'donors' });
  return {
    el: h('section', {}, h('h1', {}, 'Donors'), box),
    async refresh() {
      const { donors } = await get<Donors>('/v1/donors?top=100');
      fill(
        box,
        table(
          ['#', 'Donor', 'Frames', 'Core-hours', 'Since'],
          donors.map((d, i) => [i + 1, h('span', { class: 'donor-name' }, d.name), d.frames, (d.core_seconds / 3600).toFixed(1), when(d.created_at)]),
          { id: 'donor-table' },
        ),
      );
    },
  };
}
