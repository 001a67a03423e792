/**
 * A virtio-mmio transport in front of a test device, with the raw register steps a driver
 * takes; shared by the transport's unit and property tests.
 */
import { createTestMemory, TestVirtioDevice, type TestVirtioDeviceOptions } from '../testing/index.js';
import { VirtioMmioReg as Reg } from './mmio-registers.js';
import { VirtioMmioTransport } from './mmio-transport.js';
import { DeviceStatus, featureBit, VirtioFeature } from './types.js';

export const RAM = 0x4000_0000;
export const { ACKNOWLEDGE: ACK, DRIVER, FEATURES_OK, DRIVER_OK, DEVICE_NEEDS_RESET, FAILED } = DeviceStatus;
export const V1 = featureBit(VirtioFeature.VERSION_1);

export function setup(options: TestVirtioDeviceOptions = {}) {
  const t = createTestMemory({
    banks: [
      { gpa: RAM, size: 0x10_0000 },
      { gpa: RAM + 0x10_0000, size: 0x1000, readOnly: true },
    ],
  });
  const device = new TestVirtioDevice(options);
  const line = {
    level: false,
    raises: 0,
    raise() {
      this.level = true;
      this.raises++;
    },
    lower() {
      this.level = false;
    },
  };
  const transport = new VirtioMmioTransport(device, { memory: t.memory, interrupt: line });
  const events: string[] = [];
  transport.on('queueRefused', (i, reason) => events.push(`queueRefused ${i}: ${reason}`));
  transport.on('featuresRefused', (_f, reason) => events.push(`featuresRefused: ${reason}`));
  transport.on('needsReset', (reason) => events.push(`needsReset: ${reason}`));
  const r = (offset: number) => transport.read(offset, 4);
  const w = (offset: number, value: number) => transport.write(offset, 4, value);
  return { ...t, device, line, transport, events, r, w };
}

export type Setup = ReturnType<typeof setup>;

/** Status handshake up to FEATURES_OK with the given features, as raw register writes. */
export function negotiate(s: Setup, features: bigint = V1): void {
  s.w(Reg.STATUS, ACK);
  s.w(Reg.STATUS, ACK | DRIVER);
  s.w(Reg.DRIVER_FEATURES_SEL, 0);
  s.w(Reg.DRIVER_FEATURES, Number(features & 0xffff_ffffn));
  s.w(Reg.DRIVER_FEATURES_SEL, 1);
  s.w(Reg.DRIVER_FEATURES, Number(features >> 32n));
  s.w(Reg.STATUS, ACK | DRIVER | FEATURES_OK);
}

/** Programs queue `index` with a valid ring at `base` (QueueReady not written). */
export function program(s: Setup, index: number, base = RAM + 0x1000, num = 8): void {
  s.w(Reg.QUEUE_SEL, index);
  s.w(Reg.QUEUE_NUM, num);
  s.w(Reg.QUEUE_DESC_LOW, base);
  s.w(Reg.QUEUE_DESC_HIGH, 0);
  s.w(Reg.QUEUE_DRIVER_LOW, base + 0x400);
  s.w(Reg.QUEUE_DRIVER_HIGH, 0);
  s.w(Reg.QUEUE_DEVICE_LOW, base + 0x800);
  s.w(Reg.QUEUE_DEVICE_HIGH, 0);
}
