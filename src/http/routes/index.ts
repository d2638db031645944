/**
 * Every admin API route, and the OpenAPI document built from their declarations.
 */
import { openApiDocument, type ApiRoute } from '../declared-routes';
import type { Settings } from '../../config/settings';
import type { ApiDeps } from './common';
import { donorRoutes } from './donors';
import { engineKeyRoutes } from './engine-keys';
import { liveRoutes } from './live';
import { streamRoutes } from './streams';
import { targetRoutes } from './targets';
import { userRoutes } from './users';
import { reliabilityRoutes } from './reliability';

/** All admin routes (PROTOCOL §3). */
export function apiRoutes(settings: Settings): Array<ApiRoute<ApiDeps>> {
  return [...userRoutes(), ...donorRoutes(settings), ...engineKeyRoutes(settings), ...targetRoutes(settings), ...streamRoutes(settings), ...liveRoutes(), ...reliabilityRoutes(settings)];
}

/** A JSON response of this schema (the system routes are plain router routes, documented by hand). */
const jsonOf = (schema: Record<string, unknown>) => ({ content: { 'application/json': { schema } } });
const STR = { type: 'string' };
const READINESS = {
  type: 'object',
  required: ['status', 'checks'],
  additionalProperties: false,
  properties: {
    status: { enum: ['ready', 'unavailable'] },
    checks: { type: 'object', required: ['mongodb', 'redis'], additionalProperties: false, properties: { mongodb: STR, redis: STR }, description: '"ok", or why the backend is unreachable' },
  },
};

const SYSTEM_PATHS = {
  '/': {
    get: {
      summary: 'Service banner',
      tags: ['system'],
      security: [{}],
      responses: {
        200: {
          description: 'Alive',
          ...jsonOf({
            type: 'object',
            required: ['service', 'version', 'status', 'node', 'worker'],
            additionalProperties: false,
            properties: { service: { const: 'stream-coordinator' }, version: STR, status: { const: 'ok' }, node: STR, worker: { type: 'integer', minimum: 0 } },
          }),
        },
      },
    },
  },
  '/healthz': {
    get: { summary: 'Process is up', tags: ['system'], security: [{}], responses: { 200: { description: 'Up', ...jsonOf({ type: 'object', required: ['status'], additionalProperties: false, properties: { status: { const: 'ok' } } }) } } },
  },
  '/readyz': {
    get: {
      summary: 'MongoDB and Redis reachable',
      tags: ['system'],
      security: [{}],
      responses: { 200: { description: 'Ready', ...jsonOf(READINESS) }, 503: { description: 'Not ready; the body names the unreachable backend (Retry-After)', ...jsonOf(READINESS) } },
    },
  },
  '/metrics': {
    get: {
      summary: 'Prometheus metrics; open, or Authorization: Bearer <metrics.key> when that key is configured (not a user token)',
      tags: ['system'],
      security: [{}, { metricsKey: [] }],
      responses: { 200: { description: 'Prometheus text' }, 401: { description: 'metrics.key is configured and was not presented' } },
    },
  },
  '/openapi.json': { get: { summary: 'This document', tags: ['system'], security: [{}], responses: { 200: { description: 'OpenAPI 3.1' } } } },
};

/**
 * The OpenAPI document for these settings (limits appear in the schemas). Route
 * declarations need only the settings (handlers get their dependencies per call), so
 * building it needs no storage.
 */
export function openApiFor(settings: Settings): Record<string, unknown> {
  return openApiDocument(apiRoutes(settings), SYSTEM_PATHS);
}
