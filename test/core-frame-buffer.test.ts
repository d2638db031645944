/**
 * A frame buffer counts each buffered file's record, not only its bytes, against the memory
 * budget, and gives all of it back when cleared: frame messages of many empty files cannot
 * hold heap the budget does not see.
 */
import t from 'tap';
import { FILE_OVERHEAD_BYTES, FrameBuffer, SpillBudgetExceeded } from '../src/core/frame-buffer';
import { MemoryBudget } from '../src/core/memory-budget';
import { tempDir } from '../test-support/temp';

const KIB = 1024;

t.test('empty files count their records against core.maxBufferBytes and the memory budget', async (t) => {
  const budget = new MemoryBudget({ limitBytes: 64 * KIB, spillAtBytes: 64 * KIB, diskBytes: 1024 * KIB, sessionQueueBytes: 64 * KIB });
  const buf = new FrameBuffer(tempDir('sc-fb-'), 64 * KIB, 'overhead', undefined, budget);
  const empty = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => ({ name: `${prefix}${i}.xtc`, bytes: Buffer.alloc(0) }));
  await buf.append(empty('a', 10), 1);
  t.equal(buf.bytes, 0, 'no bytes');
  t.equal(buf.held, 10 * FILE_OVERHEAD_BYTES, 'but ten records held');
  t.equal(budget.used('frames'), 10 * FILE_OVERHEAD_BYTES, 'and counted in the budget');
  t.equal(buf.nameCount, 10);
  t.equal(buf.newNames(empty('a', 12)), 2, 'names already buffered are not new');

  // 64 KiB / 384 bytes: about 170 records fit.
  const refused = await buf.append(empty('b', 200), 1).then(
    () => undefined,
    (err: unknown) => err,
  );
  t.ok(refused instanceof SpillBudgetExceeded, 'records past the budget are refused (buffer_full to the core)');
  t.equal(budget.used('frames'), 10 * FILE_OVERHEAD_BYTES, 'a refusal keeps nothing');
  t.equal(buf.held, 10 * FILE_OVERHEAD_BYTES, 'nor buffers anything');

  await buf.append([{ name: 'a0.xtc', bytes: Buffer.alloc(1000, 1) }], 1);
  t.equal(buf.held, 1000 + 11 * FILE_OVERHEAD_BYTES);
  t.same((await buf.drain()).find((f) => f.name === 'a0.xtc')?.bytes.length, 1000, 'the same name drains as one file');
  await buf.clear();
  t.equal(budget.used('frames'), 0, 'clearing gives back bytes and records');
  t.equal(buf.held, 0);
  t.equal(buf.nameCount, 0);
});
