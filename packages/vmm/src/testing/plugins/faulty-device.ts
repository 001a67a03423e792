/**
 * A plugin that adds, at the device phase, a virtio-mmio window whose handler throws: the demo
 * guest probes it, the bus turns the exception into a `deviceError` (the guest reads 0 and
 * skips the window), and `vmm run` must still fail the run and say which device broke.
 */
import { definePlugin, InitPhase } from '@vmmkit/core';
import type { VmContext } from '../../vm.js';

export const faultyDevicePlugin = definePlugin('faulty-device', (r) => {
  r.lifecycle({
    phase: InitPhase.DEVICE,
    async init(ctx: VmContext) {
      await ctx.vm.addDevice({
        name: 'faulty',
        compatible: 'virtio,mmio',
        mmioSize: 0x200,
        irq: false,
        create: () => ({
          mmio: {
            name: 'faulty',
            size: 0x200,
            read() {
              throw new Error('register file lost its backing store');
            },
            write() {},
          },
        }),
      });
    },
  });
});
