/**
 * A database of its own on this test file's stack, for tests that talk to the store
 * through the driver alone: connected before the file's tests, closed (with the stack) after.
 */
import t from 'tap';
import { MongoClient, type Db, type MongoClientOptions } from 'mongodb';
import type { Stack } from '../../src/provision/stack';
import { getStack, stopStack } from '../../test-support/stack';

/** What {@link useStoreDb} opens; read its fields inside tests, once `t.before` has run. */
export interface StoreDb {
  readonly client: MongoClient;
  readonly db: Db;
  readonly stack: Stack;
}

/** Opens a database named `<prefix><now>` through a client with `options` for this file's tests. */
export function useStoreDb(prefix: string, options: MongoClientOptions = {}): StoreDb {
  let client: MongoClient | undefined;
  let opened: StoreDb | undefined;
  t.before(async () => {
    const stack = await getStack();
    client = new MongoClient(stack.mongo.uri, { tlsCAFile: stack.mongoCAFile, ...options });
    await client.connect();
    opened = { client, db: client.db(`${prefix}${Date.now()}`), stack };
  });
  t.teardown(async () => {
    await client?.close();
    await stopStack();
  });
  const get = (): StoreDb => {
    if (!opened) throw new Error('useStoreDb: read the database inside a test, after t.before');
    return opened;
  };
  return {
    get client() {
      return get().client;
    },
    get db() {
      return get().db;
    },
    get stack() {
      return get().stack;
    },
  };
}
