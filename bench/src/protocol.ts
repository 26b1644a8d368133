/** Messages between the harness and its load generator processes. */

export type GenCommand =
  | { cmd: 'sources'; sources: string[] }
  | { cmd: 'handshakes'; ports: number[]; concurrency: number }
  | { cmd: 'settle-handshakes' }
  | { cmd: 'open'; ports: number[]; count: number; parallel: number }
  | { cmd: 'echo'; size: number; window: number }
  | { cmd: 'settle-echo' }
  | { cmd: 'close' }
  | { cmd: 'mark' }
  | { cmd: 'stop' };

/** What one generator counted between `mark` and `stop`. */
export interface GenResult {
  elapsedMs: number;
  /** Handshakes, or echoed messages. */
  count: number;
  /** Payload bytes echoed back. */
  bytes: number;
  errors: number;
  firstError: string | undefined;
  /** Latencies in ms (handshakes, or round trips with one message in flight). */
  samples: Float64Array;
  /** The generator's own CPU time in the window. */
  cpuMicros: number;
}

export interface GenReply {
  id: number;
  value?: GenResult | { opened: number; errors: number } | undefined;
  error?: string;
}
