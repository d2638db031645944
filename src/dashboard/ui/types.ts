/**
 * Shapes of the admin API responses the dashboard reads: derived (`Static<typeof X>`) from
 * the TypeBox schemas the routes declare (src/http/api-schemas.ts), so a schema change
 * reaches the UI's type check. Type-only: nothing of it is left in the compiled modules.
 */
export type {
  ActiveCores,
  ActiveStream,
  ActiveStreams,
  Block,
  Blocks,
  Donor,
  Donors,
  EngineKey,
  EngineKeys,
  ErrorBody,
  Me,
  NodeInfo,
  Nodes,
  Partitions,
  Reliability,
  Role,
  Stage,
  Stream,
  StreamError,
  StreamErrors,
  StreamList,
  StreamStatus,
  Target,
  Targets,
  User,
  Users,
} from '../../http/api-schemas';
