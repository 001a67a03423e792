/** Guest program: exercises exits, posted doorbells, an unclaimed address and an interrupt. */
import type { GuestRuntime } from '../../vcpu/guest-runtime.js';
import { SCRATCH_COMPATIBLE, ScratchReg } from '../scratch-device.js';

export default async function exits(rt: GuestRuntime) {
  // One scratch device per vCPU, so each has its own register, doorbell count and line.
  const all = rt.findDevices(SCRATCH_COMPATIBLE);
  const dev = all[rt.cpu % all.length];
  if (!dev || dev.irq === null) throw new Error('no scratch device in the device tree');
  const id = rt.mmio.read32(dev.base + ScratchReg.ID);
  rt.mmio.write32(dev.base + ScratchReg.SCRATCH, 0xcafe0000 + rt.cpu);
  const scratch = rt.mmio.read32(dev.base + ScratchReg.SCRATCH);
  for (let i = 1; i <= 100; i++) rt.mmio.write32(dev.base + ScratchReg.DOORBELL, i);
  // The exit that follows the doorbells must observe all of them (ioeventfd ordering).
  const doorbells = rt.mmio.read32(dev.base + ScratchReg.DOORBELL_COUNT);
  const lastDoorbell = rt.mmio.read32(dev.base + ScratchReg.DOORBELL_LAST);
  const unclaimed = rt.mmio.read32(0x0900_0000);
  rt.mmio.write32(0x0900_0004, 1);
  rt.mmio.write32(dev.base + ScratchReg.RAISE, 1);
  const interrupted = await rt.waitForInterrupt(dev.irq, 10_000);
  const page = rt.allocator.alloc(0x1000);
  rt.memory.writeU32(page, 0x600d_f00d);
  rt.log(`cpu ${rt.cpu} done`);
  return { id, scratch, doorbells, lastDoorbell, unclaimed, interrupted, page, mode: rt.mode };
}
