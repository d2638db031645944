/** The multi-node layout (test-support/nodes.ts) for tests: each node's log is kept if the file fails. */
import { startCluster as startNodes, type Cluster, type ClusterOptions } from '../../test-support/nodes';
import { keepLogOnFailure } from './server';

export { inBatches, percentile, type Cluster, type Node } from '../../test-support/nodes';

/** Starts the nodes and nginx (test-support/nodes.ts), keeping every node's output for a failed file. */
export function startCluster(o: Omit<ClusterOptions, 'onServe'>): Promise<Cluster> {
  return startNodes({ ...o, onServe: keepLogOnFailure });
}
