import { Worker } from 'node:worker_threads';
import { DEFAULT_SPIN } from '../vcpu/exit-protocol.js';

// The worker asks, the calling thread answers; both poll `spin` times before blocking: the
// hybrid doorbell of perf-limits.md §5 with no protocol around it.
const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const w = new Int32Array(workerData.sab);
const spin = workerData.spin;
for (;;) {
  Atomics.wait(w, 2, 0);
  const n = Atomics.exchange(w, 2, 0);
  if (n < 0) break;
  for (let i = 0; i < n; i++) {
    Atomics.store(w, 0, 1);
    Atomics.notify(w, 0);
    let k = 0;
    while (Atomics.load(w, 16) === 0) { if (++k > spin) Atomics.wait(w, 16, 0); }
    Atomics.store(w, 16, 0);
  }
  Atomics.store(w, 3, 1);
  Atomics.notify(w, 3);
}`;

/**
 * The bare cross-thread baseline of the vCPU benchmarks: round trips between the calling thread
 * and one worker over a SharedArrayBuffer, spin-then-wait on both sides, nothing else. A VMM exit
 * or a virtqueue request from a worker vCPU is measured against it in the same run.
 */
export class PingPong {
  private readonly words = new Int32Array(new SharedArrayBuffer(128));
  private readonly worker: Worker;

  constructor(private readonly spin = DEFAULT_SPIN) {
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { sab: this.words.buffer, spin } });
  }

  /** Runs `trips` round trips (blocking the calling thread); returns round trips per second. */
  round(trips: number): number {
    const w = this.words;
    const spin = this.spin;
    const start = performance.now();
    Atomics.store(w, 2, trips);
    Atomics.notify(w, 2);
    for (let i = 0; i < trips; i++) {
      let k = 0;
      while (Atomics.load(w, 0) === 0) {
        if (++k > spin) Atomics.wait(w, 0, 0);
      }
      Atomics.store(w, 0, 0);
      Atomics.store(w, 16, 1);
      Atomics.notify(w, 16);
    }
    Atomics.wait(w, 3, 0);
    Atomics.store(w, 3, 0);
    return (trips * 1000) / (performance.now() - start);
  }

  async close(): Promise<void> {
    Atomics.store(this.words, 2, -1);
    Atomics.notify(this.words, 2);
    await this.worker.terminate();
  }
}
