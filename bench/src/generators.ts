import { type ChildProcess, fork } from 'node:child_process';
import type { GenCommand, GenReply, GenResult } from './protocol.js';

/** The harness's handle on one load generator process. */
export class Generator {
  readonly child: ChildProcess;
  readonly #pending = new Map<
    number,
    { resolve: (v: GenReply['value']) => void; reject: (e: Error) => void }
  >();
  #nextId = 1;

  constructor(index: number) {
    this.child = fork(new URL('./loadgen.ts', import.meta.url).pathname, [String(index)], {
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.child.on('message', (reply: GenReply) => {
      const waiter = this.#pending.get(reply.id);
      if (!waiter) return;
      this.#pending.delete(reply.id);
      if (reply.error) waiter.reject(new Error(reply.error));
      else waiter.resolve(reply.value);
    });
    this.child.on('exit', (code) => {
      for (const w of this.#pending.values()) w.reject(new Error(`load generator exited with ${code}`));
      this.#pending.clear();
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  send(cmd: GenCommand): Promise<GenReply['value']> {
    return new Promise((resolve, reject) => {
      const id = this.#nextId++;
      this.#pending.set(id, { resolve, reject });
      this.child.send({ id, cmd });
    });
  }

  async stop(): Promise<GenResult> {
    return (await this.send({ cmd: 'stop' })) as GenResult;
  }

  close(): void {
    if (this.child.connected) this.child.disconnect();
  }
}

/** Source addresses of generator `index`: 250 addresses of its own in 127.0.0.0/8. */
export function sourcesFor(index: number): string[] {
  return Array.from({ length: 250 }, (_, i) => `127.${10 + index}.0.${i + 1}`);
}

export function startGenerators(count: number): Generator[] {
  return Array.from({ length: count }, (_, i) => new Generator(i));
}
