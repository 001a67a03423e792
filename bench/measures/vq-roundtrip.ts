import { createVm, DEFAULT_SPIN, virtioIommu } from '@vmmkit/vmm';
import { PingPong } from '@vmmkit/vmm/testing';
import { Ctl } from '../guests/vq-roundtrip.js';
import { alternateRounds, expect, type Measure } from '../measure.js';

// ES2024's Atomics.waitAsync is in Node 20 but not in the ES2023 lib the repo compiles against.
const waitAsync = (
  Atomics as unknown as {
    waitAsync(a: Int32Array, i: number, v: number): { async: boolean; value: Promise<unknown> | string };
  }
).waitAsync;

const PER_ROUND = 20_000;
const ROUNDS = 9;
const ENDPOINT = 1;

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
  method: `A VM from \`createVm\` (worker mode: the vCPU is a worker thread, MMIO exits served by the host thread) with a virtio-iommu device. The guest program (bench/guests/vq-roundtrip.ts) runs the virtio-iommu guest driver and sends ${PER_ROUND} requests per round one at a time, alternately \`map()\` and \`unmap()\` of one 4K page, each a chain on the request queue picked up by the host thread, which busy-polls the request queue while it is awake (vhost's busy_poll: notifications stay suppressed, so only the first request of a burst rings the posted QueueNotify doorbell), the device's processing on the host thread, and the driver polling the used ring for the answer (as Linux does; it blocks on the interrupt only after 20,000 looks); it times each round on its own clock. Baseline: the same count of round trips of a bare ping-pong between the host thread and another worker, both sides polling ${DEFAULT_SPIN} times before Atomics.wait (the VMM's own spin budget). ${ROUNDS} rounds of each, alternated; medians.`,
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
    const pingPong = new PingPong(DEFAULT_SPIN);
    try {
      // Round 0 warms both up (and waits for the guest's start-up).
      return await alternateRounds(
        ROUNDS,
        () => pingPong.round(PER_ROUND),
        () => guestRound(ctl),
      );
    } finally {
      Atomics.store(ctl, Ctl.REQUEST, -1);
      Atomics.notify(ctl, Ctl.REQUEST);
      await running;
      await vm.destroy();
      await pingPong.close();
    }
  },
};
