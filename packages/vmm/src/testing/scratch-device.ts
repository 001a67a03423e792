import type { MmioHandler } from '@vmmkit/core';
import type { DeviceContext, DeviceSpec } from '../devices.js';

/** Register map of the scratch device (a test device for exits, doorbells and interrupts). */
export const ScratchReg = {
  /** RO: `SCRATCH_ID`. */
  ID: 0x00,
  /** RW: any 32-bit value. */
  SCRATCH: 0x04,
  /** WO doorbell: counts writes, keeps the last value, calls `onDoorbell`. */
  DOORBELL: 0x08,
  /** RO: doorbell writes seen so far. */
  DOORBELL_COUNT: 0x0c,
  /** RO: last doorbell value. */
  DOORBELL_LAST: 0x10,
  /** WO: raises the device's interrupt. */
  RAISE: 0x14,
} as const;

export const SCRATCH_ID = 0x54524353;
export const SCRATCH_COMPATIBLE = 'vmmkit,scratch';

export interface ScratchDeviceOptions {
  name?: string;
  /** Called on the host for every doorbell write, after it was counted. */
  onDoorbell?: (value: number, ctx: DeviceContext) => void;
}

/** A device spec for the scratch device; DOORBELL is registered as a posted doorbell. */
export function scratchDevice(options: ScratchDeviceOptions = {}): DeviceSpec {
  return {
    name: options.name ?? 'scratch',
    compatible: SCRATCH_COMPATIBLE,
    mmioSize: 0x1000,
    create(ctx) {
      let scratch = 0;
      let count = 0;
      let last = 0;
      const mmio: MmioHandler = {
        name: ctx.name,
        size: 0x1000,
        read(offset) {
          switch (offset) {
            case ScratchReg.ID:
              return SCRATCH_ID;
            case ScratchReg.SCRATCH:
              return scratch;
            case ScratchReg.DOORBELL_COUNT:
              return count;
            case ScratchReg.DOORBELL_LAST:
              return last;
            default:
              return 0;
          }
        },
        write(offset, _size, value) {
          if (offset === ScratchReg.SCRATCH) scratch = value >>> 0;
          else if (offset === ScratchReg.DOORBELL) {
            count++;
            last = value >>> 0;
            options.onDoorbell?.(last, ctx);
          } else if (offset === ScratchReg.RAISE) ctx.irq.raise();
        },
      };
      return { mmio, doorbells: [ScratchReg.DOORBELL] };
    },
  };
}
