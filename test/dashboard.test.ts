/**
 * The web dashboard in a real browser (headless Debian Chromium via playwright-core) against
 * a real server: sign-in, a core appearing live, stopping its stream from the UI, seed upload,
 * byte-identical frame download, 403 pages for a non-owner, hostile strings rendered as text,
 * CSP and caching headers. Screenshots of each view go to a temporary folder (paths printed).
 */
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { Browser, Page } from 'playwright-core';
import { coreFixture, type CoreFixture } from './helpers/core';
import { request, startTestServer } from './helpers/server';
import { getStack, stopStack } from '../test-support/stack';
import { tempDir } from '../test-support/temp';
import { startNginx } from '../src/provision/nginx';
import { newId, type StreamDoc } from '../src/model';
import { buildDashboardUi, launchBrowser, screenshotDir } from './helpers/browser';

const XSS_SCRIPT = '<script>window.__xss = 1; alert(1)</script>';
const XSS_IMG = '"><img src=x onerror="window.__xss = 2; alert(2)">';

let f: CoreFixture;
let browser: Browser;
const shots = screenshotDir();

t.before(async () => {
  buildDashboardUi();
  f = await coreFixture();
  browser = await launchBrowser((line) => t.comment(line));
});
t.teardown(async () => {
  await browser?.close();
  await f?.ts.close();
  await stopStack();
});

/** A page signed in with `token` (at `base`, the server's URL unless a proxy's); dialogs are recorded (and dismissed) so a test can assert none opened. */
async function signedIn(token: string, base = f.ts.url): Promise<{ page: Page; dialogs: string[] }> {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, acceptDownloads: true, viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  const dialogs: string[] = [];
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  await page.goto(`${base}/dashboard`);
  await page.fill('#token', token);
  await page.click('#signin button[type=submit]');
  await page.waitForSelector('#signout');
  return { page, dialogs };
}

async function shot(t: Test, page: Page, name: string): Promise<void> {
  const file = path.join(shots, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  t.comment(`screenshot ${name}: ${file}`);
}

t.test('headers: CSP on the page, versioned immutable assets with ETag, relative redirect', async (t) => {
  const r = await request(`${f.ts.url}/dashboard`, { ca: f.ts.ca });
  t.equal(r.status, 308);
  t.equal(r.headers.location, 'dashboard/', 'relative, so a proxy prefix survives');
  const page = await request(`${f.ts.url}/dashboard/`, { ca: f.ts.ca });
  t.equal(page.status, 200);
  const csp = String(page.headers['content-security-policy']);
  t.match(csp, /default-src 'self'/);
  t.match(csp, /script-src 'self'/);
  t.notMatch(csp, /unsafe-inline|unsafe-eval|http/, 'no inline script or style, no other origin');
  t.equal(page.headers['cache-control'], 'no-cache');
  const html = page.body.toString();
  t.notMatch(html, /<script>|style=|<style/, 'no inline script or style in the page');
  const assets = [...html.matchAll(/(?:src|href)="(assets\/[0-9a-f]{12}\/[^"]+)"/g)].map((m) => m[1]!);
  t.ok(assets.includes(assets.find((a) => a.endsWith('/app.js'))!), 'app.js is referenced by a versioned relative URL');
  t.equal(assets.length, 3, 'two stylesheets and one module');
  const app = await request(`${f.ts.url}/dashboard/${assets.find((a) => a.endsWith('/app.js'))}`, { ca: f.ts.ca });
  t.equal(app.status, 200);
  t.match(app.headers['content-type'], /^text\/javascript/);
  t.equal(app.headers['cache-control'], 'public, max-age=31536000, immutable');
  t.ok(app.headers.etag);
  t.match(String(app.headers['content-security-policy']), /default-src 'self'/);
  const again = await request(`${f.ts.url}/dashboard/${assets[0]}`, { ca: f.ts.ca, headers: { 'if-none-match': String((await request(`${f.ts.url}/dashboard/${assets[0]}`, { ca: f.ts.ca })).headers.etag) } });
  t.equal(again.status, 304, 'revalidation answers 304');
  t.equal(again.body.length, 0);
  const stale = await request(`${f.ts.url}/dashboard/assets/000000000000/app.js`, { ca: f.ts.ca });
  t.equal(stale.status, 404, 'another version is not served');
  const uplot = await request(`${f.ts.url}/dashboard/${assets[0]!.replace(/[^/]+$/, 'uPlot.esm.js')}`, { ca: f.ts.ca });
  t.equal(uplot.status, 200, 'uPlot is served from this origin');
});

t.test('a manager: live core, stop from the UI, upload, download, hostile strings', async (t) => {
  const target = await f.target({ stage: 'private', options: { note: XSS_SCRIPT, [XSS_IMG.slice(0, 40).replace(/[.$]/g, '_')]: XSS_IMG } });
  const stream = await f.stream(target);
  const hostileDonor = XSS_SCRIPT + XSS_IMG;
  // Names are validated by the API; this one goes straight to MongoDB to prove rendering holds even if the store ever held one.
  await f.ts.server.storage.mongo.db.collection('donors').insertOne({ name: hostileDonor, beta: false, tokenHash: 'x'.repeat(43), frames: 1e12, coreSeconds: 3600, createdAt: new Date() });

  const { page, dialogs } = await signedIn(f.manager);
  await page.goto(`${f.ts.url}/dashboard/#/overview`);
  await page.waitForSelector('#main[data-loaded=true]');

  // A core connects and takes the stream: the overview shows it within seconds.
  const c = await f.client();
  t.teardown(() => c.close());
  const a = await c.assign(target);
  t.equal(a.streamId, stream);
  const since = Date.now();
  await page.waitForSelector(`#active-table a[href="#/streams/${stream}"]`, { timeout: 15_000 });
  const liveMs = Date.now() - since;
  t.ok(liveMs < 15_000, `the core appeared on the overview after ${liveMs} ms`);
  t.comment(`core visible on the overview ${liveMs} ms after its assignment (poll interval 2 s)`);
  // Predicates run as page scripts would, so they use locators: the CSP forbids eval, string predicates included.
  await page.locator('#by-engine td', { hasText: 'openmm' }).first().waitFor({ timeout: 15_000 });

  // Frames committed by the core, for the download below.
  const frames = [Buffer.from('frame-one\n'), Buffer.from([0, 1, 2, 255, 254]), Buffer.from('frame-three\n')];
  await c.sendFrames([{ name: 'traj.xtc', data: frames[0]! }]);
  await c.sendFrames([{ name: 'traj.xtc', data: frames[1]! }]);
  await c.checkpoint([{ name: 'state.xml', data: Buffer.from('cp1') }]);
  await c.sendFrames([{ name: 'traj.xtc', data: frames[2]! }]);
  await c.checkpoint([{ name: 'state.xml', data: Buffer.from('cp2') }]);
  await page.waitForTimeout(2500);
  await shot(t, page, 'overview');

  // Targets: hostile option strings are text.
  await page.goto(`${f.ts.url}/dashboard/#/targets`);
  await page.waitForSelector(`#target-table a[href="#/targets/${target}"]`);
  const optionsText = (await page.locator(`#target-table tr:has(a[href="#/targets/${target}"]) code.options`).textContent()) ?? '';
  t.ok(optionsText.includes(XSS_SCRIPT), 'the <script> option is shown as text');
  t.ok(optionsText.includes('<img src=x onerror='), 'the <img onerror> option is shown as text (JSON-quoted)');
  await shot(t, page, 'targets');

  // The target's streams: stop from the UI; the core gets its stop.
  await page.goto(`${f.ts.url}/dashboard/#/targets/${target}`);
  await page.waitForSelector(`#stream-table tr[data-stream="${stream}"]`);
  t.match(await page.locator('#target-head').textContent(), XSS_SCRIPT, 'options on the streams page are text too');
  let clicked = 0;
  const stopped = new Promise<{ reason: string; ms: number }>((resolve) => c.once('stop', (s: { reason: string }) => resolve({ ...s, ms: Date.now() - clicked })));
  clicked = Date.now();
  await page.click(`#stream-table tr[data-stream="${stream}"] button[data-action=stop]`);
  const stop = await stopped;
  t.equal(stop.reason, 'stream_stopped', 'the core received its stop');
  t.comment(`core got its stop ${stop.ms} ms after the click`);
  await page.waitForSelector(`#stream-table tr[data-stream="${stream}"][data-status=stopped]`);

  // Upload a seed file: a new stream whose seed is those bytes.
  const seed = Buffer.from(`<State seed="${Math.random()}"/>\n`);
  await page.setInputFiles('#seed-files', { name: 'upload.xml', mimeType: 'application/xml', buffer: seed });
  await page.fill('#seed-name', 'state.xml');
  await page.click('#upload button[type=submit]');
  await page.locator('#stream-table tbody tr').nth(1).waitFor({ timeout: 15_000 });
  const list = await f.api<{ streams: Array<{ id: string }>; total: number }>('GET', `/v1/targets/${target}/streams`, f.manager, undefined, 200);
  t.equal(list.total, 2);
  const added = list.streams.find((s) => s.id !== stream)!;
  const seedBack = await request(`${f.ts.url}/v1/streams/${added.id}/files/state.xml`, { ca: f.ts.ca, headers: { authorization: `Bearer ${f.manager}` } });
  t.same(seedBack.body, seed, 'the uploaded seed is stored byte for byte');
  // Sorting is the server's: by frames descending puts the committed stream first.
  await page.click('#stream-table button[data-sort=frames]');
  await page.click('#stream-table button[data-sort=frames]');
  await page.waitForSelector('#stream-table th[aria-sort=descending] button[data-sort=frames]');
  t.equal(await page.locator('#stream-table tbody tr').first().getAttribute('data-stream'), stream, 'sorted by frames, descending');
  await shot(t, page, 'streams');

  // The stream: download the frames, byte-identical to what the core sent.
  await page.goto(`${f.ts.url}/dashboard/#/streams/${stream}`);
  await page.waitForSelector('#file-table button[data-frames="traj.xtc"]');
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#file-table button[data-frames="traj.xtc"]')]);
  t.equal(dl.suggestedFilename(), 'traj.xtc');
  const got = fs.readFileSync((await dl.path())!);
  t.same(got, Buffer.concat(frames), 'downloaded frames are byte-identical');
  await shot(t, page, 'stream');

  // A core's error message is free text from the wire: it shows as text on the stream page.
  t.equal((await c.assign(target)).streamId, added.id, 'the core takes the uploaded stream');
  await c.stop(XSS_SCRIPT + XSS_IMG);
  await page.goto(`${f.ts.url}/dashboard/#/streams/${added.id}`);
  await page.waitForSelector('#stream-errors .message');
  t.equal(await page.locator('#stream-errors .message').first().textContent(), XSS_SCRIPT + XSS_IMG, 'the error message is shown as sent');

  // Donors: the hostile name is text, and nothing ran.
  await page.goto(`${f.ts.url}/dashboard/#/donors`);
  await page.waitForSelector('#donor-table .donor-name');
  t.equal(await page.locator('#donor-table .donor-name').first().textContent(), hostileDonor, 'the donor name is shown as typed');
  await shot(t, page, 'donors');
  t.equal(await page.locator('main img, main script').count(), 0, 'no element was made from data');
  t.equal(await page.evaluate('typeof window.__xss'), 'undefined', 'no injected script ran');
  t.same(dialogs, [], 'no dialog opened');
  await page.context().close();
});

t.test('targets from the UI: create, edit stage and options, delete', async (t) => {
  const { page, dialogs } = await signedIn(f.manager);
  await page.goto(`${f.ts.url}/dashboard/#/targets`);
  await page.waitForSelector('#target-table, #targets');
  await page.fill('#new-engines', 'openmm, gromacs');
  await page.selectOption('#new-stage', 'private');
  await page.fill('#new-weight', '2.5');
  await page.fill('#new-options', '{"steps": 500, "keep": "yes", "drop": true}');
  await page.click('#create-target button[type=submit]');
  await page.waitForSelector('#status:has-text("Created target")');
  const id = /Created target (\S+)/.exec((await page.locator('#status').textContent()) ?? '')![1]!;
  t.match(await f.api('GET', `/v1/targets/${id}`, f.manager, undefined, 200), { engines: ['openmm', 'gromacs'], stage: 'private', weight: 2.5, options: { steps: 500, keep: 'yes', drop: true } }, 'created as typed');

  const row = page.locator(`#target-table tr:has(a[href="#/targets/${id}"])`);
  await row.locator('button', { hasText: 'Edit' }).click();
  await page.selectOption('#edit-stage', 'beta');
  await page.fill('#edit-options', '{"steps": 1000, "keep": "yes", "added": [1, 2]}');
  await page.click('.edit-form button[type=submit]');
  await page.waitForSelector(`#status:has-text("Saved target ${id}")`);
  const after = await f.api<{ stage: string; options: Record<string, unknown> }>('GET', `/v1/targets/${id}`, f.manager, undefined, 200);
  t.equal(after.stage, 'beta', 'stage changed');
  t.same(after.options, { steps: 1000, keep: 'yes', added: [1, 2] }, 'options edited: one changed, one removed, one added');

  await row.locator('button', { hasText: 'Delete' }).click();
  await row.locator('button', { hasText: 'Confirm delete' }).click();
  await page.waitForSelector(`#status:has-text("Deleted target ${id}")`);
  const gone = await request(`${f.ts.url}/v1/targets/${id}`, { ca: f.ts.ca, headers: { authorization: `Bearer ${f.manager}` } });
  t.equal(gone.status, 404, 'deleted');
  t.same(dialogs, [], 'no dialogs');
  await page.context().close();
});

t.test('a manager who does not own the target sees 403 pages, not data', async (t) => {
  const target = await f.target({ stage: 'private', options: { secret: 'owner-only-value' } });
  const stream = await f.stream(target);
  const other = (await f.api<{ token: string }>('POST', '/v1/users', f.admin, { name: `other${process.pid}`, role: 'manager' }, 201)).token;
  const { page } = await signedIn(other);
  for (const route of [`/targets/${target}`, `/streams/${stream}`]) {
    await page.goto(`${f.ts.url}/dashboard/#${route}`);
    await page.waitForSelector('.error-page[data-status="403"]');
    const text = (await page.locator('#main').textContent()) ?? '';
    t.match(text, /403 Forbidden/, `${route}: 403 page`);
    t.notMatch(text, new RegExp(`${stream}|owner-only-value`), `${route}: no data of the target`);
    t.equal(await page.locator('#stream-table, #file-table').count(), 0);
  }
  await shot(t, page, 'forbidden');
  await page.goto(`${f.ts.url}/dashboard/#/users`);
  await page.waitForSelector('.error-page[data-status="403"]');
  t.pass('admin pages are refused to a manager');
  await page.context().close();
});

t.test('an admin: users, engine keys (shown once, revoked), blocks, nodes', async (t) => {
  const { page } = await signedIn(f.admin);
  await page.goto(`${f.ts.url}/dashboard/#/users`);
  await page.waitForSelector('#users table');
  await shot(t, page, 'users');
  await page.goto(`${f.ts.url}/dashboard/#/keys`);
  await page.waitForSelector('#key-table');
  await page.fill('#key-engine', 'gromacs');
  await page.fill('#key-description', 'from the dashboard test');
  await page.click('#create-key button[type=submit]');
  await page.waitForSelector('#secret');
  const key = await page.inputValue('#secret');
  t.match(key, /^[A-Za-z0-9_-]{43}$/, 'the new key is shown');
  const listed = await f.api<{ engine_keys: Array<{ id: string; description: string; revoked_at?: string }> }>('GET', '/v1/engine-keys', f.admin, undefined, 200);
  const made = listed.engine_keys.find((k) => k.description === 'from the dashboard test')!;
  t.ok(made, 'the key exists');
  t.notMatch(JSON.stringify(listed), key, 'the API never lists the key itself');
  await shot(t, page, 'engine-keys');
  await page.click(`#key-table button[data-key="${made.id}"]`);
  await page.locator(`#key-table button[data-key="${made.id}"]`).waitFor({ state: 'detached' });
  const after = await f.api<{ engine_keys: Array<{ id: string; revoked_at?: string }> }>('GET', '/v1/engine-keys', f.admin, undefined, 200);
  t.ok(after.engine_keys.find((k) => k.id === made.id)?.revoked_at, 'revoked from the UI');
  await page.goto(`${f.ts.url}/dashboard/#/blocks`);
  await page.waitForSelector('#block-table');
  await page.selectOption('#block-kind', 'address');
  await page.fill('#block-value', '203.0.113.0/24');
  await page.fill('#block-reason', 'from the dashboard test');
  await page.click('#create-block button[type=submit]');
  const row = page.locator('#block-table tr', { hasText: '203.0.113.0/24' });
  await row.waitFor();
  const blocked = (await f.api<{ blocks: Array<{ id: string; value: string; reason: string }> }>('GET', '/v1/blocks', f.admin, undefined, 200)).blocks.find((b) => b.value === '203.0.113.0/24');
  t.equal(blocked?.reason, 'from the dashboard test', 'blocked from the UI');
  await page.fill('#record-query', '203.0.113.7');
  await page.check('#record-address');
  await page.click('#lookup-record button[type=submit]');
  await page.waitForSelector('#record-table');
  await shot(t, page, 'blocks');
  await page.click(`#block-table button[data-block="${blocked!.id}"]`);
  await row.waitFor({ state: 'detached' });
  t.same((await f.api<{ blocks: unknown[] }>('GET', '/v1/blocks', f.admin, undefined, 200)).blocks, [], 'unblocked from the UI');
  await page.goto(`${f.ts.url}/dashboard/#/nodes`);
  await page.waitForSelector('#node-table tbody tr');
  t.match(await page.textContent('#node-table tbody tr'), /\d+\.\d+\.\d+ \(store 2\)/, 'each node shows its release and the store shapes it knows');
  await shot(t, page, 'nodes');
  await page.goto(`${f.ts.url}/dashboard/#/overview`);
  await page.waitForSelector('#by-node table');
  await shot(t, page, 'overview-admin');
  await page.context().close();
});

t.test('behind the TLS-terminating proxy (nginx with the production config)', async (t) => {
  const stack = await getStack();
  // A second node with TLS off on the same database, reached only through nginx.
  const plain = await startTestServer({ 'tls.cert': '', 'tls.key': '', 'tls.ca': '', 'server.trustProxy': ['127.0.0.1'], 'mongodb.database': f.ts.settings.mongodb.database });
  t.teardown(() => plain.close());
  const nginx = await startNginx({ dir: tempDir('sc-nginx-'), upstreamPort: plain.server.port, cert: stack.certs.fullChain, key: stack.certs.key });
  t.teardown(() => nginx.stop());
  const target = await f.target({ stage: 'private' });
  const stream = await f.stream(target, Buffer.from('seed through the proxy'));
  const { page } = await signedIn(f.manager, nginx.url);
  await page.goto(`${nginx.url}/dashboard/#/targets/${target}`);
  await page.waitForSelector(`#stream-table tr[data-stream="${stream}"]`);
  t.pass('signed in and listed streams through the proxy');
  await page.goto(`${nginx.url}/dashboard/#/streams/${stream}`);
  await page.waitForSelector('#file-table button[data-file="state.xml"]');
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#file-table button[data-file="state.xml"]')]);
  t.same(fs.readFileSync((await dl.path())!), Buffer.from('seed through the proxy'), 'a download through the proxy is byte-identical');
  const head = await request(`${nginx.url}/dashboard/`, { ca: f.ts.ca });
  t.match(String(head.headers['content-security-policy']), /default-src 'self'/, 'the CSP survives the proxy');
  await shot(t, page, 'via-proxy');
  await page.context().close();
});

/** Streams in the big-target test: 2,000 by default (FerretDB scans; see below), DASHBOARD_TEST_STREAMS=10000 for the full size. */
const MANY = Number(process.env.DASHBOARD_TEST_STREAMS ?? 2000);

t.test(`a target with ${MANY} streams: pages come from the server`, async (t) => {
  const target = await f.target({ stage: 'disabled' });
  // FerretDB (the test database) answers these by scanning the collection: seconds per call on a
  // loaded machine, where MongoDB uses the {targetId, status} index. Hence the long waits.
  const SLOW = 180_000;
  // Seeded straight into MongoDB: 10,000 POSTs would only measure stream creation. Disabled, so no core is given them.
  const owner = (await f.api<{ name: string }>('GET', '/v1/me', f.manager)).name;
  const now = Date.now();
  const docs: StreamDoc[] = Array.from({ length: MANY }, (_, i) => ({
    _id: newId(),
    targetId: target,
    owner,
    status: i % 10 === 0 ? 'stopped' : 'ok',
    frames: (i * 7919) % 10_007, // distinct for fewer than 10,007 streams
    partitions: [],
    partitionIds: [],
    errorCount: i % 3,
    seedFiles: ['state.xml'],
    tagFiles: [],
    frameFiles: [],
    checkpointFiles: [],
    createdAt: new Date(now + i),
    updatedAt: new Date(now + i),
  }));
  await f.ts.server.storage.mongo.db.collection<StreamDoc>('streams').insertMany(docs);
  const top = [...docs].sort((a, b) => b.frames - a.frames || (a._id < b._id ? 1 : -1));

  for (const q of ['limit=50', 'sort=-frames&limit=50', `sort=-frames&limit=50&offset=${MANY - 50}`]) {
    const at = Date.now();
    const r = await f.api<{ streams: unknown[]; total: number }>('GET', `/v1/targets/${target}/streams?${q}`, f.manager, undefined, 200);
    t.comment(`API ${q}: ${r.streams.length} of ${r.total} in ${Date.now() - at} ms`);
  }
  const at = Date.now();
  await f.api('GET', `/v1/targets/${target}`, f.manager, undefined, 200);
  t.comment(`API target with counts: ${Date.now() - at} ms`);
  const { page } = await signedIn(f.manager);
  let started = Date.now();
  await page.goto(`${f.ts.url}/dashboard/#/targets/${target}`);
  await page.waitForSelector('#stream-table tbody tr', { timeout: SLOW });
  const firstMs = Date.now() - started;
  t.equal(await page.locator('#stream-table tbody tr').count(), 50, `one page of 50 rows, not ${MANY}`);
  t.match(await page.locator('#range').textContent(), `1–50 of ${MANY}`);
  started = Date.now();
  await page.click('#stream-table button[data-sort=frames]');
  await page.waitForSelector('#stream-table th[aria-sort=ascending] button[data-sort=frames]', { timeout: SLOW });
  await page.click('#stream-table button[data-sort=frames]');
  await page.waitForSelector('#stream-table th[aria-sort=descending] button[data-sort=frames]', { timeout: SLOW });
  await page.locator(`#stream-table tbody tr[data-stream="${top[0]!._id}"]`).waitFor({ timeout: SLOW });
  const sortMs = Date.now() - started;
  const shown = await page.locator('#stream-table tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-stream')));
  t.same(shown, top.slice(0, 50).map((d) => d._id), 'the 50 streams with most frames, in order');
  started = Date.now();
  await page.click('#next', { timeout: SLOW });
  await page.locator(`#stream-table tbody tr[data-stream="${top[50]!._id}"]`).waitFor({ timeout: SLOW });
  const nextMs = Date.now() - started;
  t.match(await page.locator('#range').textContent(), `51–100 of ${MANY}`);
  t.comment(`${MANY} streams: first page ${firstMs} ms, sorted by frames ${sortMs} ms (two clicks), next page ${nextMs} ms, in the browser`);
  await shot(t, page, `streams-${MANY}`);
  await page.context().close();
});
