/**
 * The admin API's shared TypeBox schemas — field formats and the response bodies that the
 * dashboard and the `stream-coordinator` CLI read — with their TypeScript types derived by
 * `Static<typeof X>`. The route declarations in routes/*.ts use these very objects, so the
 * OpenAPI document, the validation and the clients' types cannot drift apart.
 *
 * This module imports nothing but TypeBox on purpose: the browser UI
 * (src/dashboard/ui/tsconfig.json, DOM types and no Node) type-checks it through its
 * `import type`s, which compile to nothing in the UI's JavaScript.
 */
import { Type, type ObjectOptions, type Static, type StringOptions, type TObject, type TProperties, type TString, type TUnsafe } from '@sinclair/typebox';

/** An object schema that rejects unknown fields; mark optional fields with `Type.Optional`. */
export function object<T extends TProperties>(properties: T, extra: ObjectOptions = {}): TObject<T> {
  return Type.Object(properties, { additionalProperties: false, ...extra });
}

/** A bounded string. */
export function str(maxLength: number, extra: StringOptions = {}): TString {
  return Type.String({ maxLength, ...extra });
}

/** A string from a fixed set, as a JSON Schema `enum` (TypeBox's own unions would render as `anyOf`). */
export function oneOf<const T extends readonly string[]>(values: T): TUnsafe<T[number]> {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values] });
}

/** Ids as the server makes them (22 characters of base64url); model.ts re-exports it. */
export const ID_PATTERN = '^[A-Za-z0-9_-]{22}$';
/**
 * Names of stream files (seed, tag, frame and checkpoint files): a letter or digit first (so
 * no name is hidden or relative), then up to 127 of letters, digits, `.`, `_`, `-`; model.ts
 * re-exports it.
 */
export const FILE_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$';
/** Target stages; model.ts re-exports them. */
export const STAGES = ['public', 'beta', 'private', 'disabled'] as const;

/** User and donor names. */
export const NAME = str(64, { pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' });
/** File names (PROTOCOL §2). */
export const FILE_NAME = str(128, { pattern: FILE_NAME_PATTERN });
/** Engine names, e.g. openmm_80_cuda. */
export const ENGINE = str(64, { pattern: '^[a-z0-9][a-z0-9_.-]{0,63}$' });
/** Opaque ids. */
export const ID = str(22, { pattern: ID_PATTERN });
/** Weights for fair share. */
export const WEIGHT = Type.Number({ exclusiveMinimum: 0, maximum: 1e6 });
/** ISO-8601 timestamp strings. */
export const TIME = Type.String({ format: 'date-time' });

/** `/v1/me`. */
export const ME = object({ name: NAME, role: oneOf(['admin', 'manager', 'donor']) });
/** A new token, shown once. */
export const TOKEN = object({ token: Type.String() });

/** Users (admins and managers). */
export const USER_ROLE = oneOf(['manager', 'admin']);
export const USER = object({ name: NAME, role: USER_ROLE, weight: WEIGHT, created_at: TIME });
export const USERS = object({ users: Type.Array(USER) });
export const USER_CREATED = object({ name: NAME, role: USER_ROLE, token: Type.String() });

/** Donor statistics and the leaderboard. */
export const DONOR_STATS = { frames: Type.Integer(), core_seconds: Type.Number() };
export const DONOR = object({ name: NAME, ...DONOR_STATS, created_at: Type.Optional(TIME) });
export const DONORS = object({ donors: Type.Array(DONOR) });

/** Engine keys (never the key itself, except once in {@link ENGINE_KEY_CREATED}). */
export const ENGINE_KEY = object({ id: ID, engine: ENGINE, description: Type.String(), created_at: TIME, revoked_at: Type.Optional(TIME) });
export const ENGINE_KEYS = object({ engine_keys: Type.Array(ENGINE_KEY) });
export const ENGINE_KEY_CREATED = object({ id: ID, engine: ENGINE, key: Type.String() });

/** Targets. */
export const STAGE = oneOf(STAGES);
/** A target's streams by status, and the frames committed over all of them. */
export const STREAM_COUNTS = object({ ok: Type.Integer(), stopped: Type.Integer(), failed: Type.Integer(), frames: Type.Integer({ description: "Committed frames summed over the target's streams" }) });
export const TARGET_CREATED = object({ target_id: ID });

/** The limits the target schemas carry (limits.* settings). */
export interface TargetLimits {
  /** limits.maxOptionsKeys */
  maxOptionsKeys: number;
  /** limits.maxTargetEngines */
  maxTargetEngines: number;
}

/** The target schemas for these limits: free-form options, the engine list, and the target as shown. */
export function targetSchemas(limits: TargetLimits) {
  /** Free-form target options: a JSON object of at most limits.maxOptionsKeys top-level keys. */
  const OPTIONS = Type.Unsafe<Record<string, unknown>>({ type: 'object', maxProperties: limits.maxOptionsKeys });
  const ENGINES = Type.Array(ENGINE, { minItems: 1, maxItems: limits.maxTargetEngines, uniqueItems: true });
  const TARGET = object({
    id: ID,
    owner: NAME,
    engines: ENGINES,
    stage: STAGE,
    weight: WEIGHT,
    options: OPTIONS,
    created_at: TIME,
    updated_at: TIME,
    streams: Type.Optional(STREAM_COUNTS),
  });
  return { OPTIONS, ENGINES, TARGET, TARGETS: object({ targets: Type.Array(TARGET) }) };
}
type TargetSchemas = ReturnType<typeof targetSchemas>;

/** Streams. */
export const STREAM_STATUS = oneOf(['ok', 'stopped', 'failed']);
export const STREAM = object({
  id: ID,
  target_id: ID,
  status: STREAM_STATUS,
  frames: Type.Integer(),
  error_count: Type.Integer(),
  active: Type.Boolean(),
  engine: Type.Optional(ENGINE),
  donor: Type.Optional(NAME),
  created_at: TIME,
});
export const STREAM_LIST = object({ streams: Type.Array(STREAM), total: Type.Optional(Type.Integer()) });
export const STREAM_CREATED = object({ stream_id: ID });
export const FILE_NAMES = Type.Array(FILE_NAME);
export const PARTITIONS = object({
  partitions: Type.Array(Type.Integer()),
  seed_files: FILE_NAMES,
  tag_files: FILE_NAMES,
  frame_files: FILE_NAMES,
  checkpoint_files: FILE_NAMES,
});
export const STREAM_ERROR = object({ at: TIME, message: Type.String(), engine: Type.Optional(ENGINE), donor: Type.Optional(NAME) });
export const STREAM_ERRORS = object({ errors: Type.Array(STREAM_ERROR) });

/** Live views. */
export const ACTIVE_STREAM = object(
  { stream_id: ID, engine: ENGINE, donor: Type.Optional(NAME), node: Type.String(), started_at: TIME, buffered_frames: Type.Integer(), frames: Type.Integer() },
);
/** `{name: integer}` maps. */
export const NAMED_COUNTS = Type.Unsafe<Record<string, number>>({ type: 'object', additionalProperties: Type.Integer() });
/** A target's committed frames and commits so far; rates are differences between two reads. */
export const TARGET_PROGRESS = object({ frames: Type.Integer(), commits: Type.Integer() });
export const ACTIVE_STREAMS = object({
  targets: Type.Unsafe<Record<string, Array<Static<typeof ACTIVE_STREAM>>>>({ type: 'object', additionalProperties: Type.Array(ACTIVE_STREAM) }),
  progress: Type.Unsafe<Record<string, Static<typeof TARGET_PROGRESS>>>({ type: 'object', additionalProperties: TARGET_PROGRESS }),
  progress_at: TIME,
});
export const ACTIVE_CORES = object({ engines: NAMED_COUNTS, total: Type.Integer() });
export const NODE = object({
  node: Type.String(),
  host: Type.String(),
  pid: Type.Integer(),
  worker: Type.Integer(),
  url: Type.Optional(Type.String()),
  started_at: TIME,
  seen_at: TIME,
  sessions: Type.Integer(),
  sessions_by_engine: NAMED_COUNTS,
  // Absent for processes of releases before they were reported.
  version: Type.Optional(Type.String()),
  store_schema: Type.Optional(Type.Integer()),
});
export const NODES = object({ nodes: Type.Array(NODE) });

/** Admin blocks (reliability.ts). */
export const BLOCK_KIND = oneOf(['donor', 'engine_key', 'address'] as const);
export const BLOCK = object({ id: ID, kind: BLOCK_KIND, value: Type.String(), reason: Type.String(), created_at: TIME, created_by: Type.String() });
export const BLOCKS = object({ blocks: Type.Array(BLOCK) });
/** `GET /v1/reliability`: a donor's or an address's record. */
export const RELIABILITY_RECORD = object({
  kind: oneOf(['donor', 'address'] as const),
  id: Type.String({ description: 'Donor name, or the address key (IPv4 address or IPv6 /64)' }),
  window_s: Type.Integer(),
  assignments: Type.Integer(),
  commits: Type.Integer(),
  stream_errors: Type.Integer(),
  protocol_errors: Type.Integer(),
  error_rate: Type.Number({ description: '(stream errors + protocol errors) / (assignments + protocol errors) over the whole window, 0–1' }),
  sample: Type.Integer({ description: 'Events judged: assignments + protocol errors since the last cooling-off ended' }),
  judged_error_rate: Type.Number({ description: 'The error rate over those events, 0–1: what cooling-off decides on' }),
  cooling_until: Type.Optional(TIME),
  blocked_by: Type.Optional(BLOCK),
});

/** The API's error body (docs/errors.md). */
export const ERROR_BODY = object({ error: object({ code: Type.String(), message: Type.String() }) });

export type Me = Static<typeof ME>;
export type Role = Me['role'];
export type Token = Static<typeof TOKEN>;
export type User = Static<typeof USER>;
export type Users = Static<typeof USERS>;
export type UserCreated = Static<typeof USER_CREATED>;
export type Donor = Static<typeof DONOR>;
export type Donors = Static<typeof DONORS>;
export type EngineKey = Static<typeof ENGINE_KEY>;
export type EngineKeys = Static<typeof ENGINE_KEYS>;
export type EngineKeyCreated = Static<typeof ENGINE_KEY_CREATED>;
export type Stage = Static<typeof STAGE>;
export type Target = Static<TargetSchemas['TARGET']>;
export type Targets = Static<TargetSchemas['TARGETS']>;
export type TargetCreated = Static<typeof TARGET_CREATED>;
export type StreamStatus = Static<typeof STREAM_STATUS>;
export type Stream = Static<typeof STREAM>;
export type StreamList = Static<typeof STREAM_LIST>;
export type StreamCreated = Static<typeof STREAM_CREATED>;
export type Partitions = Static<typeof PARTITIONS>;
export type StreamError = Static<typeof STREAM_ERROR>;
export type StreamErrors = Static<typeof STREAM_ERRORS>;
export type ActiveStream = Static<typeof ACTIVE_STREAM>;
export type ActiveStreams = Static<typeof ACTIVE_STREAMS>;
export type ActiveCores = Static<typeof ACTIVE_CORES>;
export type NodeInfo = Static<typeof NODE>;
export type Nodes = Static<typeof NODES>;
export type Block = Static<typeof BLOCK>;
export type Blocks = Static<typeof BLOCKS>;
export type Reliability = Static<typeof RELIABILITY_RECORD>;
export type ErrorBody = Static<typeof ERROR_BODY>;
