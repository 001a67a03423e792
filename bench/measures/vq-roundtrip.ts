import { Worker } from 'node:worker_threads';
import { createVm, DEFAULT_SPIN, virtioIommu } from '@vmmkit/vmm';
import { Ctl } from '../guests/vq-roundtrip.js';
import { expect, type Measure, median } from '../measure.js';

// ES2024's Atomics.waitAsync is in Node 20 but not in the ES2023 lib the repo compiles against.
const waitAsync = (
  Atomics as unknown as {
    waitAsync(a: Int32Array, i: number, v: number): { async: boolean; value: Promise<unknown> | string };
  }
).waitAsync;

const PER_ROUND = 20_000;
const ROUNDS = 9;
const ENDPOINT = 1;

// Bare ping-pong: the worker asks, the main thread answers, both poll DEFAULT_SPIN times before
// blocking — the hybrid doorbell of perf-limits.md §5 with no protocol around it.
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

function pingPongRound(ping: Int32Array, trips: number): number {
  const start = performance.now();
  Atomics.store(ping, 2, trips);
  Atomics.notify(ping, 2);
  for (let i = 0; i < trips; i++) {
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
  return (trips * 1000) / (performance.now() - start);
}

async function guestRound(ctl: Int32Array): Promise<number> {
  Atomics.store(ctl, Ctl.DONE, 0);
  Atomics.store(ctl, Ctl.REQUEST, 1);
  Atomics.notify(ctl, Ctl.REQUEST);
  // The host thread must stay free to serve the vCPU's exits, so it waits asynchronously.
  const waited = waitAsync(ctl, Ctl.DONE, 0);
  if (waited.async) await waited.value;
  expect(ctl[Ctl.FAILURES] === 0, 'every MAP and UNMAP succeeded');
  return (PER_ROUND * 1e6) / ctl[Ctl.ELAPSED_US]!;
}

export const vqRoundtrip: Measure = {
  id: 'vq-roundtrip',
  unit: 'requests/s',
  baseline: 'bare spin-then-wait ping-pong between two threads',
  target: 'ratio >= 0.4',
  meets: (r) => r.ratio! >= 0.4,
  method: `A VM from \`createVm\` (worker mode: the vCPU is a worker thread, MMIO exits served by the host thread) with a virtio-iommu device. The guest program (bench/guests/vq-roundtrip.ts) runs the virtio-iommu guest driver and sends ${PER_ROUND} requests per round one at a time, alternately \`map()\` and \`unmap()\` of one 4K page, each a chain on the request queue, a QueueNotify doorbell (posted to the host like an ioeventfd: no exit round trip), the device's processing on the host thread and the driver polling the used ring for the answer (as Linux does; it blocks on the interrupt only after 20,000 looks); it times each round on its own clock. Baseline: the same count of round trips of a bare ping-pong between the host thread and another worker, both sides polling ${DEFAULT_SPIN} times before Atomics.wait (the VMM's own spin budget). ${ROUNDS} rounds of each, alternated; medians.`,
  async run() {
    const control = new SharedArrayBuffer(64);
    const ctl = new Int32Array(control);
    const vm = await createVm({
      memory: 16 * 1024 * 1024,
      mode: 'worker',
      devices: [virtioIommu({ endpoints: [{ id: ENDPOINT }] })],
    });
    const running = vm.run({
      module: new URL('../guests/vq-roundtrip.ts', import.meta.url),
      args: { control, perRound: PER_ROUND, endpoint: ENDPOINT },
    });
    const pingSab = new SharedArrayBuffer(128);
    const ping = new Int32Array(pingSab);
    const pingWorker = new Worker(PING_PONG, {
      eval: true,
      workerData: { sab: pingSab, spin: DEFAULT_SPIN },
    });
    const values: number[] = [];
    const baselines: number[] = [];
    try {
      // Round 0 warms both up (and waits for the guest's start-up).
      for (let round = 0; round <= ROUNDS; round++) {
        const b = pingPongRound(ping, PER_ROUND);
        const v = await guestRound(ctl);
        if (round > 0) {
          baselines.push(b);
          values.push(v);
        }
      }
    } finally {
      Atomics.store(ping, 2, -1);
      Atomics.notify(ping, 2);
      Atomics.store(ctl, Ctl.REQUEST, -1);
      Atomics.notify(ctl, Ctl.REQUEST);
      await running;
      await vm.destroy();
      await pingWorker.terminate();
    }
    return { value: median(values), baselineValue: median(baselines) };
  },
};
