/**
 * scripts/setup.js runs before any dependency or build exists, so it cannot import the
 * provisioning code: it names FerretDB's version and build itself. They must agree with
 * src/provision/ferretdb.ts, or setup looks for the cached binary in a folder that is never
 * made (it then announced a build that did not happen, and failed on a machine without Go).
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { FERRETDB_BUILD, FERRETDB_VERSION } from '../src/provision/ferretdb';

const ROOT = path.resolve(__dirname, '..', '..');

t.test("setup.js names the provisioning's FerretDB version and build", async (t) => {
  const script = fs.readFileSync(path.join(ROOT, 'scripts', 'setup.js'), 'utf8');
  t.equal(/const FERRETDB_VERSION = '([^']+)'/.exec(script)?.[1], FERRETDB_VERSION, 'version');
  t.equal(/const FERRETDB_BUILD = '([^']+)'/.exec(script)?.[1], FERRETDB_BUILD, 'build (the cache folder)');
});
