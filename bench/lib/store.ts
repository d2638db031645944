/**
 * A correction to the test store, applied only when it is FerretDB.
 *
 * FerretDB v1.24.2's SQLite backend pushes an `{_id: <string>}` filter down as
 * `WHERE _ferretdb_sjson->'$._id' = ?`, but the unique `_id_` index it creates is on
 * `_ferretdb_sjson->"_id"`, an expression SQLite's planner does not treat as the same: every
 * lookup by `_id` is a full table scan (EXPLAIN: `SCAN streams_…`). With 10,000 streams a
 * miss costs ~80 ms and a hit ~half that, so assigning N streams costs O(N²). MongoDB always
 * has a usable `_id` index; to measure the coordinator rather than that defect, the bench
 * adds the index FerretDB's own query can use, to each collection's table, with the sqlite3
 * CLI (SQLite maintains it on every write; FerretDB does not need to know about it).
 * Queries on other fields (e.g. `{_id, frames}`, `{streamId, kind}`) are still scans there.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { which } from '../../src/provision/exec';
import type { BenchStack } from './stack';

/** Adds `_id` expression indexes to every table of `database`; returns what it did. */
export function fixFerretIdIndexes(stack: BenchStack, database: string): string {
  if (stack.stack.mongoKind !== 'ferretdb') return 'not needed (mongod)';
  const sqlite = which('sqlite3');
  if (!sqlite) return 'sqlite3 CLI missing: _id lookups scan whole tables (apt-get install sqlite3)';
  const file = path.join(stack.baseDir, 'mongo', `${database}.sqlite`);
  if (!fs.existsSync(file)) return `no ${file}`;
  const run = (sql: string): string => execFileSync(sqlite, ['-cmd', '.timeout 20000', file, sql], { encoding: 'utf8' }).trim();
  const tables = run('SELECT table_name FROM _ferretdb_collections').split('\n').filter(Boolean);
  for (const t of tables) {
    if (!/^[A-Za-z0-9_.]+$/.test(t)) continue;
    run(`CREATE INDEX IF NOT EXISTS "${t}_bench_id" ON "${t}" (_ferretdb_sjson->'$._id')`);
  }
  return `indexed _id of ${tables.length} tables`;
}
