/**
 * The semaphore behind core.maxConcurrentCommits and core.maxConcurrentAssignments: never
 * more than its limit at once, and waiters served in arrival order, also when a new caller
 * arrives at the moment a slot is handed over.
 */
import t from 'tap';
import { Limiter } from '../src/core/limiter';

t.test('a freed slot goes to the first waiter, not to a caller arriving meanwhile', async (t) => {
  const limiter = new Limiter(1);
  let running = 0;
  let most = 0;
  const order: string[] = [];
  const task = (name: string) => async (): Promise<void> => {
    running++;
    most = Math.max(most, running);
    order.push(name);
    await new Promise((r) => setImmediate(r));
    running--;
  };
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const first = limiter.run(() => {
    order.push('first');
    return gate;
  });
  const waiter = limiter.run(task('waiter'));
  open();
  // Queued right behind the first task's end: a caller asking in the same turn as the slot
  // is handed over (another socket's message handled in that turn).
  const late = Promise.resolve().then(() => limiter.run(task('late')));
  await Promise.all([first, waiter, late]);
  t.same(order, ['first', 'waiter', 'late'], 'served in arrival order');
  t.equal(most, 1, 'never more than the limit at once');
  t.equal(limiter.active, 0, 'every slot given back');
});

t.test('up to the limit run at once; the rest wait in order', async (t) => {
  const limiter = new Limiter(3);
  let running = 0;
  let most = 0;
  const order: number[] = [];
  await Promise.all(Array.from({ length: 20 }, (_, i) => limiter.run(async () => {
    running++;
    most = Math.max(most, running);
    order.push(i);
    await new Promise((r) => setTimeout(r, 1 + (i % 4)));
    running--;
  })));
  t.equal(most, 3);
  t.same(order, Array.from({ length: 20 }, (_, i) => i), 'started in arrival order');
  t.equal(limiter.active, 0);
});
