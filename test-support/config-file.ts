/** Config files for servers started as child processes by the tests and the benchmarks. */
import fs from 'node:fs';
import path from 'node:path';
import { nest } from '../src/config/settings';
import { tempDir } from './temp';

/** Writes flat `a.b.c` overrides (`{'server.port': 0}`) to `file` as a nested JSON config file. */
export function writeConfigFile(file: string, flat: Record<string, unknown>): void {
  fs.writeFileSync(file, JSON.stringify(nest(flat), null, 2));
}

/** Writes flat overrides as a JSON config file for the CLI. */
export function writeConfig(overrides: Record<string, unknown>): string {
  const file = path.join(tempDir('sc-conf-'), 'config.json');
  writeConfigFile(file, overrides);
  return file;
}
