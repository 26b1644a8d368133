import {
  destination as pinoDestination,
  pino,
  type DestinationStream,
  type Logger,
  type LoggerOptions,
} from 'pino';
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
  return pino(options, destination ?? stdoutDestination());
}

/** Bytes of log lines held while stdout refuses them; past it, lines are dropped. */
const MAX_PENDING_LOG = 1024 * 1024;

/**
 * Stdout that never stalls the proxy: a full non-blocking pipe (EAGAIN) or a closed one (EPIPE)
 * costs log lines, not the event loop. Written synchronously, so nothing waits to be flushed at
 * exit (an exit-time flush into a dead pipe would never return).
 */
function stdoutDestination(): DestinationStream {
  const destination = pinoDestination({
    dest: 1,
    sync: true,
    maxLength: MAX_PENDING_LOG,
    retryEAGAIN: () => false,
  });
  destination.on('error', () => {
    // The lines are lost; the connections are not.
  });
  return destination;
}
