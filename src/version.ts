/** The package version, read once from package.json. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Package version (semver). */
export const VERSION: string = (JSON.parse(fs.readFileSync(path.resolve(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;

/** This process's node id: host name and pid, unique among live coordinator processes. */
export const NODE_ID = `${os.hostname()}:${process.pid}`;
