/**
 * Guest program for the exit benchmark: on each interrupt, performs `args.batch` MMIO reads
 * (each one an exit), then rings the doorbell with the batch number; stops when SCRATCH is 0.
 */
import type { GuestRuntime } from '../../vcpu/guest-runtime.js';
import { SCRATCH_COMPATIBLE, ScratchReg } from '../scratch-device.js';

export default async function benchExits(rt: GuestRuntime) {
  const { batch } = rt.args as { batch: number };
  const [dev] = rt.findDevices(SCRATCH_COMPATIBLE);
  const reg = dev!.base + ScratchReg.SCRATCH;
  for (let round = 1; ; round++) {
    await rt.waitForInterrupt(dev!.irq!);
    if (rt.mmio.read32(reg) === 0) return round - 1;
    for (let i = 0; i < batch; i++) rt.mmio.read32(reg);
    rt.mmio.write32(dev!.base + ScratchReg.DOORBELL, round);
  }
}
