/**
 * MMIO exit round trips from a worker vCPU, beside a bare spin-then-wait ping-pong between two
 * threads measured in the same run (perf-limits §5: ~2.9 M/s hybrid on these machines).
 * Each bench iteration runs BATCH round trips; the ratio printed at the end is the exit rate
 * over the bare rate.
 */
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, bench, describe } from 'vitest';
import { scratchDevice } from '../testing/scratch-device.js';
import { createVm, type Vm } from '../vm.js';
import { DEFAULT_SPIN } from './exit-protocol.js';

const BATCH = 20_000;

// Bare ping-pong: the worker asks, the main thread answers, both poll DEFAULT_SPIN times before
// blocking, exactly the hybrid doorbell of perf-limits §5 with no protocol around it.
const PING_PONG = `
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

const rate = { exits: { trips: 0, ms: 0 }, bare: { trips: 0, ms: 0 } };
let vm: Vm;
let running: Promise<unknown[]>;
let finished: (() => void) | null = null;
let pingWorker: Worker;
const pingSab = new SharedArrayBuffer(128);
const ping = new Int32Array(pingSab);

beforeAll(async () => {
  vm = await createVm({
    memory: 1024 * 1024,
    mode: 'worker',
    devices: [scratchDevice({ onDoorbell: () => finished?.() })],
  });
  vm.bus.write(vm.deviceNodes[0]!.base + 4, 4, 1); // SCRATCH != 0: keep going
  running = vm.run({
    module: new URL('../testing/guests/bench-exits.ts', import.meta.url),
    args: { batch: BATCH },
  });
  // One round before measuring, so the worker's start-up is not counted.
  await exitRound();
  pingWorker = new Worker(PING_PONG, { eval: true, workerData: { sab: pingSab, spin: DEFAULT_SPIN } });
});

function exitRound(): Promise<void> {
  const done = new Promise<void>((resolve) => {
    finished = resolve;
  });
  vm.irqs.raise(0);
  return done;
}

afterAll(async () => {
  vm.bus.write(vm.deviceNodes[0]!.base + 4, 4, 0); // SCRATCH = 0: the guest returns
  vm.irqs.raise(0);
  await running;
  await vm.destroy();
  Atomics.store(ping, 2, -1);
  Atomics.notify(ping, 2);
  await pingWorker.terminate();
  const exitRate = rate.exits.trips / (rate.exits.ms / 1000);
  const bareRate = rate.bare.trips / (rate.bare.ms / 1000);
  console.log(
    `MMIO exit round trips: ${(exitRate / 1e6).toFixed(3)} M/s; bare spin-then-wait ping-pong: ${(bareRate / 1e6).toFixed(3)} M/s; ratio ${(exitRate / bareRate).toFixed(2)}`,
  );
});

describe('vCPU exits', () => {
  bench(
    `MMIO exit round trips from a worker vCPU (${BATCH} per iteration)`,
    async () => {
      const start = performance.now();
      await exitRound();
      rate.exits.ms += performance.now() - start;
      rate.exits.trips += BATCH;
    },
    { iterations: 20, warmupIterations: 2, time: 0 },
  );

  bench(
    `bare spin-then-wait ping-pong between two threads (${BATCH} per iteration)`,
    () => {
      const start = performance.now();
      Atomics.store(ping, 2, BATCH);
      Atomics.notify(ping, 2);
      for (let i = 0; i < BATCH; i++) {
        let k = 0;
        while (Atomics.load(ping, 0) === 0) {
          if (++k > DEFAULT_SPIN) Atomics.wait(ping, 0, 0);
        }
        Atomics.store(ping, 0, 0);
        Atomics.store(ping, 16, 1);
        Atomics.notify(ping, 16);
      }
      Atomics.wait(ping, 3, 0);
      Atomics.store(ping, 3, 0);
      rate.bare.ms += performance.now() - start;
      rate.bare.trips += BATCH;
    },
    { iterations: 20, warmupIterations: 2, time: 0 },
  );
});
