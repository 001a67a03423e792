/**
 * Guest program: asks the host (doorbell 1) to plug a bank at `args.gpa`, waits for the
 * interrupt, uses the bank; then asks (doorbell 2) for its removal and checks it is gone.
 */
import type { MemoryBank } from '@vmmkit/core';
import type { GuestRuntime } from '../../vcpu/guest-runtime.js';
import { SCRATCH_COMPATIBLE, ScratchReg } from '../scratch-device.js';

export default async function hotplug(rt: GuestRuntime) {
  const { gpa } = rt.args as { gpa: number };
  const [dev] = rt.findDevices(SCRATCH_COMPATIBLE);
  const added: number[] = [];
  const removed: number[] = [];
  rt.memory.on('bankAdded', (b: MemoryBank) => added.push(b.gpa));
  rt.memory.on('bankRemoved', (b: MemoryBank) => removed.push(b.gpa));
  const visibleBefore = rt.memory.isAccessible(gpa, 4, 'write');
  rt.mmio.write32(dev!.base + ScratchReg.DOORBELL, 1);
  if (!(await rt.waitForInterrupt(dev!.irq!, 10_000))) throw new Error('no interrupt after plug');
  const visibleAfterPlug = rt.memory.isAccessible(gpa, 4, 'write');
  rt.memory.writeU32(gpa + 0x10, 0x0b0b_0b0b);
  rt.mmio.write32(dev!.base + ScratchReg.DOORBELL, 2);
  if (!(await rt.waitForInterrupt(dev!.irq!, 10_000))) throw new Error('no interrupt after unplug');
  const visibleAfterUnplug = rt.memory.isAccessible(gpa, 4, 'read');
  return { visibleBefore, visibleAfterPlug, visibleAfterUnplug, added, removed };
}
