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

const SYSTEM_PATHS = {
  '/': { get: { summary: 'Service banner', tags: ['system'], security: [{}], responses: { 200: { description: 'Alive' } } } },
  '/healthz': { get: { summary: 'Process is up', tags: ['system'], security: [{}], responses: { 200: { description: 'Up' } } } },
  '/readyz': {
    get: { summary: 'MongoDB and Redis reachable', tags: ['system'], security: [{}], responses: { 200: { description: 'Ready' }, 503: { description: 'Not ready; the body names the unreachable backend' } } },
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
