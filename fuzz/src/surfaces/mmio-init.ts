/**
 * The virtio-mmio v2 initialization sequence as a hostile driver performs it: status writes in
 * any order, feature words, queue sizes and ring addresses that may be misaligned, outside RAM or
 * overlapping, QueueReady toggles, then notifications and a request. The transport and device
 * must answer every access without throwing, and either serve the request or refuse the queue.
 */
import { VirtioMmioReg as Reg } from '@vmmkit/core';
import { smmuv3Plugin } from '@vmmkit/smmuv3';
import { encodeAttach } from '@vmmkit/virtio-iommu';
import { createVirtioIommuHarness } from '@vmmkit/virtio-iommu/testing';
import fc from 'fast-check';
import { expectThat, surface } from './surface.js';

const RAM = 0x4000_0000;
const addressArb = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 0x3f }).map((p) => RAM + 0x1_0000 + p * 0x1000) },
  { weight: 1, arbitrary: fc.integer({ min: RAM, max: RAM + (4 << 20) }) },
  { weight: 1, arbitrary: fc.constantFrom(0, RAM - 0x1000, RAM + (4 << 20) - 8, 2 ** 52, 2 ** 64 - 4096) },
);

type Op =
  | { op: 'status'; value: number }
  | { op: 'features'; sel: number; value: number }
  | { op: 'queue'; sel: number; num: number; desc: number; driver: number; device: number; ready: number }
  | { op: 'notify'; queue: number }
  | { op: 'ack'; value: number }
  | { op: 'config'; offset: number; value: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('status' as const),
      value: fc.oneof(fc.constantFrom(0, 1, 3, 11, 15, 0x40, 0x80), fc.nat(255)),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('features' as const),
      sel: fc.nat(3),
      value: fc.oneof(fc.constant(0xffff_ffff), fc.nat(), fc.constantFrom(0x17f, 1, 0)),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('queue' as const),
      sel: fc.oneof(fc.constantFrom(0, 1), fc.nat(0xffff)),
      num: fc.oneof(fc.constantFrom(0, 1, 2, 3, 64, 256, 257, 1024, 32768), fc.nat(0xffff_ffff)),
      desc: addressArb,
      driver: addressArb,
      device: addressArb,
      ready: fc.constantFrom(0, 1, 1, 2),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('notify' as const),
      queue: fc.oneof(fc.constantFrom(0, 1), fc.nat(0xffff_ffff)),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('ack' as const), value: fc.nat(0xffff_ffff) }) },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant('config' as const), offset: fc.nat(48), value: fc.nat(255) }),
  },
);

const lo = (v: number) => (v % 2 ** 32) >>> 0;
const hi = (v: number) => Math.floor(v / 2 ** 32) >>> 0;

export const mmioInit = surface({
  name: 'mmio-init',
  description: 'virtio-mmio init sequences: status order, features, queue sizes and ring addresses, notify',
  input: fc.array(opArb, { minLength: 1, maxLength: 30 }),
  async run(ops) {
    const h = createVirtioIommuHarness({
      endpoints: [{ id: 1 }],
      memorySize: 4 << 20,
      plugins: [smmuv3Plugin],
    });
    const t = h.transport;
    const w = (reg: number, value: number) => t.write(reg, 4, value >>> 0);
    for (const o of ops) {
      switch (o.op) {
        case 'status':
          w(Reg.STATUS, o.value);
          break;
        case 'features':
          w(Reg.DRIVER_FEATURES_SEL, o.sel);
          w(Reg.DRIVER_FEATURES, o.value);
          break;
        case 'queue':
          w(Reg.QUEUE_SEL, o.sel);
          w(Reg.QUEUE_NUM, o.num);
          w(Reg.QUEUE_DESC_LOW, lo(o.desc));
          w(Reg.QUEUE_DESC_HIGH, hi(o.desc));
          w(Reg.QUEUE_DRIVER_LOW, lo(o.driver));
          w(Reg.QUEUE_DRIVER_HIGH, hi(o.driver));
          w(Reg.QUEUE_DEVICE_LOW, lo(o.device));
          w(Reg.QUEUE_DEVICE_HIGH, hi(o.device));
          w(Reg.QUEUE_READY, o.ready);
          break;
        case 'notify':
          w(Reg.QUEUE_NOTIFY, o.queue);
          break;
        case 'ack':
          w(Reg.INTERRUPT_ACK, o.value);
          break;
        case 'config':
          t.write(Reg.CONFIG + o.offset, 1, o.value);
          break;
      }
      const status = t.read(Reg.STATUS, 4);
      expectThat(
        Number.isInteger(status) && status >= 0 && status <= 0xff,
        `status register reads ${status}`,
      );
    }
    // Whatever state the guest left, a DMA translation and a device reset still behave.
    h.device.translate({ endpoint: 1, iova: 0x1000n, access: 'read' });
    const status = t.read(Reg.STATUS, 4);
    let served = 'not live';
    if (status === 0x0f) {
      // The harness's own queues may still be live: a request through them must be answered or refused.
      try {
        const { usedLength } = await h.submit(encodeAttach({ domain: 1, endpoint: 1 }), 4);
        served = usedLength === 4 ? 'served' : 'used 0';
      } catch {
        served = 'no completion';
      }
    }
    w(Reg.STATUS, 0);
    expectThat(t.read(Reg.STATUS, 4) === 0, 'a reset did not clear the status');
    return `status ${status.toString(16)} ${served}`;
  },
});
