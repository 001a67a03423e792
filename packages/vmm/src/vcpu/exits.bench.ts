/**
 * MMIO exit round trips from a worker vCPU, beside a bare spin-then-wait ping-pong between two
 * threads measured in the same run (perf-limits §5: ~2.9 M/s hybrid on these machines).
 * Each bench iteration runs BATCH round trips; the ratio printed at the end is the exit rate
 * over the bare rate.
 */
import { afterAll, beforeAll, bench, describe } from 'vitest';
import { PingPong } from '../testing/ping-pong.js';
import { scratchDevice } from '../testing/scratch-device.js';
import { createVm, type Vm } from '../vm.js';
import { DEFAULT_SPIN } from './exit-protocol.js';

const BATCH = 20_000;

const rate = { exits: { trips: 0, ms: 0 }, bare: { trips: 0, ms: 0 } };
let vm: Vm;
let running: Promise<unknown[]>;
let finished: (() => void) | null = null;
let pingPong: PingPong;

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
  pingPong = new PingPong(DEFAULT_SPIN);
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
  await pingPong.close();
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
      const perSecond = pingPong.round(BATCH);
      rate.bare.ms += (BATCH / perSecond) * 1000;
      rate.bare.trips += BATCH;
    },
    { iterations: 20, warmupIterations: 2, time: 0 },
  );
});
