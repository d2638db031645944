import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { JEMALLOC_CONF, JEMALLOC_PATHS, preloadEnv, preloadedMalloc, resolveMallocLibrary } from '../src/malloc-library';
import { checkMalloc } from '../src/config/preflight';
import { mallocEnv, workersMalloc } from '../src/workers';
import { loadConfig, type Settings } from '../src/config/settings';

const only = (...files: string[]) => (file: string): boolean => files.includes(file);
const debian = JEMALLOC_PATHS[0]!;

t.test('server.mallocLibrary resolves to a library to preload, or glibc', async (t) => {
  t.same(resolveMallocLibrary('auto', only(debian)), { kind: 'preload', library: debian }, 'auto finds jemalloc where Debian puts it');
  t.same(resolveMallocLibrary('auto', only('/usr/lib64/libjemalloc.so.2')), { kind: 'preload', library: '/usr/lib64/libjemalloc.so.2' }, 'or where Red Hat does');
  const none = resolveMallocLibrary('auto', only());
  t.equal(none.kind, 'glibc', 'auto without jemalloc keeps glibc');
  t.match(none, { why: /libjemalloc2/ }, 'and says what to install');
  t.same(resolveMallocLibrary('glibc', only(debian)), { kind: 'glibc', why: 'server.mallocLibrary is "glibc"' }, 'glibc keeps glibc even when jemalloc is there');
  t.same(resolveMallocLibrary('/opt/lib/libmimalloc.so', only('/opt/lib/libmimalloc.so')), { kind: 'preload', library: '/opt/lib/libmimalloc.so' });
  t.throws(() => resolveMallocLibrary('/opt/lib/missing.so', only()), /no file at \/opt\/lib\/missing\.so/, 'a path that is not there is an error');
});

t.test('the environment a worker gets: the library, jemalloc options, and the operator\'s own values winning', async (t) => {
  const je = { kind: 'preload', library: debian } as const;
  t.same(preloadEnv(je, {}), { LD_PRELOAD: debian, MALLOC_CONF: JEMALLOC_CONF });
  t.same(preloadEnv(je, { MALLOC_CONF: 'narenas:1' }), { LD_PRELOAD: debian }, 'MALLOC_CONF of the operator wins');
  t.same(preloadEnv(je, { LD_PRELOAD: '/x/libtcmalloc.so' }), {}, 'LD_PRELOAD of the operator wins');
  t.same(preloadEnv({ kind: 'preload', library: '/opt/libmimalloc.so' }, {}), { LD_PRELOAD: '/opt/libmimalloc.so' }, 'jemalloc options only for jemalloc');
  t.same(preloadEnv({ kind: 'glibc', why: '' }, {}), {});

  const settings = (library: string, threshold = 131072): Settings => ({ server: { mallocLibrary: library, mallocMmapThresholdBytes: threshold } }) as unknown as Settings;
  t.same(mallocEnv(settings('auto'), {}, only(debian)), { LD_PRELOAD: debian, MALLOC_CONF: JEMALLOC_CONF }, 'no glibc threshold with jemalloc');
  t.same(mallocEnv(settings('auto'), {}, only()), { MALLOC_MMAP_THRESHOLD_: '131072' }, 'glibc gets its threshold');
  t.throws(() => mallocEnv(settings('/nope.so'), {}, only()), /no file at/);
});

t.test('what a primary gives its workers and logs, including a missing library in preflight "warn" mode', async (t) => {
  const settings = (library: string): Settings => ({ server: { mallocLibrary: library, mallocMmapThresholdBytes: 131072 } }) as unknown as Settings;
  t.same(workersMalloc(settings('auto'), {}, only(debian)), { env: { LD_PRELOAD: debian, MALLOC_CONF: JEMALLOC_CONF }, library: debian });
  t.same(workersMalloc(settings('auto'), {}, only()), { env: { MALLOC_MMAP_THRESHOLD_: '131072' }, library: 'glibc' });
  t.same(
    workersMalloc(settings('auto'), { LD_PRELOAD: '/x/libtcmalloc.so' }, only(debian)),
    { env: { MALLOC_MMAP_THRESHOLD_: '131072' }, library: '/x/libtcmalloc.so' },
    'an operator\'s own LD_PRELOAD is what the workers run on, and what the log names',
  );
  t.same(
    workersMalloc(settings('/opt/missing.so'), {}, only(debian)),
    { env: { MALLOC_MMAP_THRESHOLD_: '131072' }, library: 'glibc', warning: 'server.mallocLibrary: no file at /opt/missing.so; the workers start on glibc malloc' },
    'a missing library does not stop the group (preflight already reported it): glibc, and a warning',
  );
});

t.test('which malloc a process runs on, read from its memory map', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sc-maps-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const maps = (lines: string[]): string => {
    const f = path.join(dir, `maps-${lines.length}-${Math.random()}`);
    fs.writeFileSync(f, `${lines.join('\n')}\n`);
    return f;
  };
  const glibc = [
    '55d0c0000000-55d0c0001000 r--p 00000000 fe:01 123 /usr/bin/node',
    '7f0000000000-7f0000020000 r-xp 00000000 fe:01 456 /usr/lib/x86_64-linux-gnu/libc.so.6',
    '7f0000100000-7f0000200000 rw-p 00000000 00:00 0 ',
  ];
  t.equal(preloadedMalloc(maps(glibc)), undefined, 'glibc alone');
  t.equal(preloadedMalloc(maps([...glibc, `7f0000300000-7f0000340000 r-xp 00000000 fe:01 789 ${debian}`])), debian, 'jemalloc');
  t.equal(preloadedMalloc(maps([...glibc, '7f0000300000-7f0000340000 r-xp 00000000 fe:01 790 /usr/lib/libtcmalloc_minimal.so.4.5.9'])), '/usr/lib/libtcmalloc_minimal.so.4.5.9', 'tcmalloc');
  t.equal(preloadedMalloc(maps([...glibc, '7f0000300000-7f0000340000 r-xp 00000000 fe:01 791 /srv/libjemalloc-notes/readme.so.txt/x'])), undefined, 'a directory named like it is not the library');
  t.equal(preloadedMalloc(path.join(dir, 'missing')), undefined, 'no map: unknown, so glibc is assumed');
});

t.test('preflight says which malloc the server will run on', async (t) => {
  const settings = (library: string): Settings => loadConfig({ env: { SC_MALLOC_LIBRARY: library } });
  t.match(checkMalloc(settings('auto'), 4, undefined, only(debian), {}), { ok: true, detail: `workers preload ${debian}` });
  t.match(checkMalloc(settings('auto'), 4, undefined, only(debian), { LD_PRELOAD: '/opt/libtcmalloc.so' }), { ok: true, detail: /keep this environment's LD_PRELOAD \(\/opt\/libtcmalloc\.so\)/ }, 'an operator\'s own preload is what workers get');
  t.match(checkMalloc(settings('auto'), 4, undefined, only(), {}), { ok: true, detail: /workers use glibc malloc: jemalloc is not installed/ });
  t.match(checkMalloc(settings('auto'), 1, debian, only(debian)), { ok: true, detail: `this process runs on ${debian}` });
  t.match(checkMalloc(settings('auto'), 1, undefined, only(debian)), { ok: true, detail: new RegExp(`start it with LD_PRELOAD=${debian}`) }, 'a single process started without it is told how');
  t.match(checkMalloc(settings('/opt/none.so'), 1, undefined, only()), { ok: false, detail: /no file at \/opt\/none\.so/, fix: /server\.mallocLibrary/ });
  t.throws(() => settings('jemalloc'), /mallocLibrary/, 'a bare name is refused: the key takes "auto", "glibc" or a path');
});
