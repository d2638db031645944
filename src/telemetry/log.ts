/**
 * Logging: pino JSON lines (or pino-pretty in development). Secrets never reach a log
 * line: authorization headers, tokens, keys and passphrases are redacted by path.
 */
import pino from 'pino';

/** A logger. */
export type Logger = pino.Logger;

/** Paths censored in every log line, at any of the depths where they appear. */
export const REDACT_PATHS = [
  'authorization',
  'token',
  'key',
  'passphrase',
  'password',
  'uri',
  '*.authorization',
  '*.token',
  '*.key',
  '*.passphrase',
  '*.password',
  '*.uri',
  'headers.authorization',
  'headers["x-donor-token"]',
  'req.headers.authorization',
  'req.headers["x-donor-token"]',
];

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  level: string;
  pretty: boolean;
  /** Where JSON lines go; stdout by default. */
  destination?: pino.DestinationStream;
}

/** Creates the process logger. Falls back to JSON when pino-pretty is not installed. */
export function createLogger(opts: LoggerOptions): Logger {
  const base = {
    level: opts.level,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (opts.pretty && !opts.destination) {
    try {
      require.resolve('pino-pretty');
      return pino({ ...base, transport: { target: 'pino-pretty', options: { colorize: process.stdout.isTTY === true, singleLine: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } });
    } catch {
      const logger = pino(base);
      logger.warn('log.pretty is set but pino-pretty is not installed; logging JSON');
      return logger;
    }
  }
  return opts.destination ? pino(base, opts.destination) : pino(base);
}
