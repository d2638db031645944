/**
 * The per-key and per-donor counts behind core.maxAssignmentsPerKey / PerDonor
 * (src/core/assignment-registry.ts): a stream kept for a resume counts until it is resumed
 * here or its grace period ends, exactly once, and a resume of it is not refused for it.
 */
import t from 'tap';
import { AssignmentRegistry } from '../src/core/assignment-registry';
import type { CoreSession } from '../src/core/session';
import type { CoreIdentity } from '../src/model';

const alice: CoreIdentity = { engine: 'e', keyId: 'k1', donor: { name: 'alice', beta: false }, remote: '127.0.0.1' };
const bob: CoreIdentity = { engine: 'e', keyId: 'k1', donor: { name: 'bob', beta: false }, remote: '127.0.0.1' };
/** The registry reads only a session's identity. */
const session = (who: CoreIdentity): CoreSession => ({ who }) as unknown as CoreSession;
const caps = { perKey: 10, perDonor: 2, retryAfterS: 5 };

t.test('a parked stream counts once, until resumed here or its grace period ends', async (t) => {
  const r = new AssignmentRegistry();
  t.teardown(() => r.clear());
  r.set('s1', session(alice));
  r.set('s2', session(alice));
  // The session lets go of s1 for a resume: parked first, so the count never dips.
  r.park('s1', alice, 60_000);
  r.delete('s1');
  r.park('s1', alice, 60_000);
  t.same(r.held(alice), { key: 2, donor: 2 }, 'parked once, however often');
  t.throws(() => r.admit(alice, caps, 1), /kept for a resume \(core\.maxAssignmentsPerDonor\)/, 'a third is refused');
  t.doesNotThrow(() => r.admit(alice, caps, 1, 's1'), 'resuming the parked one is not');
  t.throws(() => r.admit(alice, { ...caps, perDonor: 10, perKey: 2 }, 1, 's9'), /maxAssignmentsPerKey/, 'the key counts it too');
  r.set('s1', session(alice));
  t.same(r.held(alice), { key: 2, donor: 2 }, 'resumed here: held, no longer parked');
  r.delete('s1');
  r.delete('s2');
  t.same(r.held(alice), { key: 0, donor: 0 });

  r.park('s3', bob, 50);
  t.same(r.held(bob), { key: 1, donor: 1 });
  await new Promise((resolve) => setTimeout(resolve, 1300));
  t.same(r.held(bob), { key: 0, donor: 0 }, 'its grace period over: no longer counted');
  r.park('s4', bob, 60_000);
  r.unpark('s4');
  r.unpark('s4');
  t.same(r.held(bob), { key: 0, donor: 0 }, 'unparked once, however often');
});
