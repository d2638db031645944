/** Config files for servers started as child processes by the tests and the benchmarks. */
import fs from 'node:fs';
import { nest } from '../src/config/settings';

/** Writes flat `a.b.c` overrides (`{'server.port': 0}`) to `file` as a nested JSON config file. */
export function writeConfigFile(file: string, flat: Record<string, unknown>): void {
  fs.writeFileSync(file, JSON.stringify(nest(flat), null, 2));
}
