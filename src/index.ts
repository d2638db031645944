/** Package entry: the core client SDK and the server's start function. */
export * from './client';
export { startServer } from './server';
export type { RunningServer } from './server';
export { loadConfig } from './config/settings';
export type { Settings } from './config/settings';
