import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import type { LogConfig } from './config.js';

export type { Logger };

/** The root pino logger: JSON on stdout, level from the config. */
export function createLogger(config: LogConfig | undefined, destination?: DestinationStream): Logger {
  const options: LoggerOptions = {
    level: config?.level ?? 'info',
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  return destination ? pino(options, destination) : pino(options);
}
