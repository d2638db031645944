/** The core client SDK: `import { CoreClient } from 'stream-coordinator/client'`. */
export { CoreClient, CoreError, CORE_SUBPROTOCOL } from './core-client';
export type { Ack, Assignment, Committed, CoreClientOptions, OutFile, Welcome } from './core-client';
