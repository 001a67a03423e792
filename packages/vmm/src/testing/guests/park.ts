/** Guest program: tells the host it is parked (doorbell), then waits for an interrupt that never comes. */
import type { GuestRuntime } from '../../vcpu/guest-runtime.js';
import { SCRATCH_COMPATIBLE, ScratchReg } from '../scratch-device.js';

export default async function park(rt: GuestRuntime) {
  const [dev] = rt.findDevices(SCRATCH_COMPATIBLE);
  rt.mmio.write32(dev!.base + ScratchReg.DOORBELL, 1);
  await rt.waitForInterrupt(dev!.irq!);
  return 'woken';
}
