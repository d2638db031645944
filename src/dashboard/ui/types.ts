/**
 * Shapes of the admin API responses the dashboard reads, field for field as the response
 * schemas in src/http/routes/*.ts declare them (docs/api.md is generated from the same).
 */
export type Role = 'admin' | 'manager' | 'donor';
export type Stage = 'public' | 'beta' | 'private' | 'disabled';
export type StreamStatus = 'ok' | 'stopped' | 'failed';

export interface Me {
  name: string;
  role: Role;
}

export interface Target {
  id: string;
  owner: string;
  engines: string[];
  stage: Stage;
  weight: number;
  options: Record<string, unknown>;
  created_at: string;
  updated_at: string;
  streams?: { ok: number; stopped: number; failed: number };
}

export interface Stream {
  id: string;
  target_id: string;
  status: StreamStatus;
  frames: number;
  error_count: number;
  active: boolean;
  engine?: string;
  donor?: string;
  created_at: string;
}

export interface StreamList {
  streams: Stream[];
  total?: number;
}

export interface Partitions {
  partitions: number[];
  seed_files: string[];
  tag_files: string[];
  frame_files: string[];
  checkpoint_files: string[];
}

export interface StreamError {
  at: string;
  message: string;
  engine?: string;
  donor?: string;
}

export interface ActiveStream {
  stream_id: string;
  engine: string;
  donor?: string;
  node: string;
  started_at: string;
  buffered_frames: number;
  frames: number;
}

export interface Donor {
  name: string;
  frames: number;
  core_seconds: number;
  created_at?: string;
}

export interface User {
  name: string;
  role: 'manager' | 'admin';
  weight: number;
  created_at: string;
}

export interface EngineKey {
  id: string;
  engine: string;
  description: string;
  created_at: string;
  revoked_at?: string;
}

export interface NodeInfo {
  node: string;
  host: string;
  pid: number;
  worker: number;
  url?: string;
  started_at: string;
  seen_at: string;
  sessions: number;
  sessions_by_engine: Record<string, number>;
}

/** The API's error body (docs/errors.md). */
export interface ErrorBody {
  error: { code: string; message: string };
}
