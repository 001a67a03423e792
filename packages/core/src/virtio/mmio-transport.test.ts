import { describe, expect, it } from 'vitest';
import { VirtioMmioReg as Reg, VIRTIO_MMIO_MAGIC } from './mmio-registers.js';
import {
  ACK,
  DEVICE_NEEDS_RESET,
  DRIVER,
  DRIVER_OK,
  FEATURES_OK,
  negotiate,
  program,
  RAM,
  type Setup,
  setup,
  V1,
} from './mmio-transport.fixture.js';
import { featureBit, VirtioFeature } from './types.js';

describe('virtio-mmio v2 register file (virtio 1.2 §4.2.2)', () => {
  it('identifies itself and reads 0 for unknown offsets, odd sizes and misaligned accesses', () => {
    const s = setup({ deviceId: 23, vendorId: 0x1234 });
    expect(s.r(Reg.MAGIC_VALUE)).toBe(VIRTIO_MMIO_MAGIC);
    expect(s.r(Reg.VERSION)).toBe(2);
    expect(s.r(Reg.DEVICE_ID)).toBe(23);
    expect(s.r(Reg.VENDOR_ID)).toBe(0x1234);
    expect(s.r(0x018)).toBe(0);
    expect(s.r(0x0f8)).toBe(0);
    expect(s.transport.read(Reg.MAGIC_VALUE, 1)).toBe(0);
    expect(s.transport.read(Reg.MAGIC_VALUE, 8)).toBe(0);
    expect(s.transport.read(Reg.MAGIC_VALUE + 2, 4)).toBe(0);
    expect(s.transport.read(-4, 4)).toBe(0);
    expect(s.transport.read(0x1_0000, 4)).toBe(0);
    expect(s.r(Reg.SHM_LEN_LOW)).toBe(0xffff_ffff);
    s.w(Reg.MAGIC_VALUE, 0);
    expect(s.r(Reg.MAGIC_VALUE)).toBe(VIRTIO_MMIO_MAGIC);
    // Status written with a byte access is ignored.
    s.transport.write(Reg.STATUS, 1, ACK);
    expect(s.r(Reg.STATUS)).toBe(0);
  });

  it('offers the device features plus VERSION_1, minus transport features it lacks, by selector', () => {
    const packed = featureBit(VirtioFeature.RING_PACKED);
    const s = setup({ features: featureBit(3) | featureBit(VirtioFeature.EVENT_IDX) | packed });
    s.w(Reg.DEVICE_FEATURES_SEL, 0);
    expect(s.r(Reg.DEVICE_FEATURES)).toBe((1 << 3) | (1 << 29));
    s.w(Reg.DEVICE_FEATURES_SEL, 1);
    expect(s.r(Reg.DEVICE_FEATURES)).toBe(1); // VERSION_1 (bit 32), not RING_PACKED (bit 34)
    s.w(Reg.DEVICE_FEATURES_SEL, 2);
    expect(s.r(Reg.DEVICE_FEATURES)).toBe(0);
  });

  it('reports queue sizes for existing queues only', () => {
    const s = setup({ queueMaxSizes: [64, 8] });
    s.w(Reg.QUEUE_SEL, 1);
    expect(s.r(Reg.QUEUE_NUM_MAX)).toBe(8);
    s.w(Reg.QUEUE_SEL, 2);
    expect(s.r(Reg.QUEUE_NUM_MAX)).toBe(0);
    expect(s.r(Reg.QUEUE_READY)).toBe(0);
  });
});

describe('virtio-mmio status and feature negotiation (virtio 1.2 §3.1.1, §2.2)', () => {
  it('keeps FEATURES_OK clear for features that were not offered or lack VERSION_1', () => {
    const s = setup({ features: V1 });
    negotiate(s, V1 | featureBit(5));
    expect(s.r(Reg.STATUS)).toBe(ACK | DRIVER);
    expect(s.events.at(-1)).toMatch(/not offered/);
    const t = setup({ features: V1 | featureBit(5) });
    negotiate(t, featureBit(5));
    expect(t.r(Reg.STATUS)).toBe(ACK | DRIVER);
    expect(t.events.at(-1)).toMatch(/VERSION_1/);
  });

  it('lets the device refuse a feature combination', () => {
    const s = setup({ acceptFeatures: (f) => (f & featureBit(VirtioFeature.EVENT_IDX)) === 0n });
    negotiate(s, V1 | featureBit(VirtioFeature.EVENT_IDX));
    expect(s.r(Reg.STATUS) & FEATURES_OK).toBe(0);
    s.w(Reg.STATUS, 0);
    negotiate(s, V1);
    expect(s.r(Reg.STATUS)).toBe(ACK | DRIVER | FEATURES_OK);
    expect(s.transport.features).toBe(V1);
  });

  it('ignores bits set out of order and feature writes after FEATURES_OK', () => {
    const s = setup();
    s.w(Reg.STATUS, DRIVER);
    expect(s.r(Reg.STATUS)).toBe(0);
    s.w(Reg.STATUS, ACK);
    s.w(Reg.STATUS, ACK | FEATURES_OK);
    expect(s.r(Reg.STATUS)).toBe(ACK);
    s.w(Reg.STATUS, ACK | DRIVER | DEVICE_NEEDS_RESET);
    expect(s.r(Reg.STATUS)).toBe(ACK | DRIVER);
    negotiate(s, V1);
    s.w(Reg.DRIVER_FEATURES_SEL, 0);
    s.w(Reg.DRIVER_FEATURES, 0xffff_ffff);
    expect(s.transport.features).toBe(V1);
    // Clearing bits without a reset does not clear them.
    s.w(Reg.STATUS, ACK);
    expect(s.r(Reg.STATUS)).toBe(ACK | DRIVER | FEATURES_OK);
  });

  it('answers DRIVER_OK before FEATURES_OK with DEVICE_NEEDS_RESET and does not activate', () => {
    const s = setup();
    s.w(Reg.STATUS, ACK);
    s.w(Reg.STATUS, ACK | DRIVER);
    s.w(Reg.STATUS, ACK | DRIVER | DRIVER_OK);
    expect(s.r(Reg.STATUS)).toBe(ACK | DRIVER | DEVICE_NEEDS_RESET);
    expect(s.device.activation).toBeNull();
    // Not live yet, so no configuration change interrupt.
    expect(s.r(Reg.INTERRUPT_STATUS)).toBe(0);
    s.w(Reg.STATUS, 0);
    expect(s.r(Reg.STATUS)).toBe(0);
  });

  it('activates the device with a DeviceQueue per ready queue at DRIVER_OK', () => {
    const s = setup({ queueMaxSizes: [16, 16, 16] });
    negotiate(s, V1 | featureBit(VirtioFeature.EVENT_IDX));
    program(s, 0);
    s.w(Reg.QUEUE_READY, 1);
    program(s, 2, RAM + 0x2000, 4);
    s.w(Reg.QUEUE_READY, 1);
    expect(s.r(Reg.QUEUE_READY)).toBe(1);
    s.w(Reg.STATUS, ACK | DRIVER | FEATURES_OK | DRIVER_OK);
    expect(s.r(Reg.STATUS)).toBe(ACK | DRIVER | FEATURES_OK | DRIVER_OK);
    const activation = s.device.activation!;
    expect(activation.features).toBe(V1 | featureBit(VirtioFeature.EVENT_IDX));
    expect(activation.queues[1]).toBeUndefined();
    expect(activation.queues[0]!.layout).toEqual({
      size: 8,
      descTable: RAM + 0x1000,
      availRing: RAM + 0x1400,
      usedRing: RAM + 0x1800,
    });
    expect(activation.queues[0]!.features).toEqual({ eventIdx: true, indirect: false });
    expect(activation.queues[2]!.size).toBe(4);
  });
});

describe('virtio-mmio queue setup (virtio 1.2 §4.2.3.2)', () => {
  const refusals: [string, (s: Setup) => void, RegExp][] = [
    [
      'before FEATURES_OK',
      (s) => {
        s.w(Reg.STATUS, ACK);
        s.w(Reg.STATUS, ACK | DRIVER);
        program(s, 0);
      },
      /before FEATURES_OK/,
    ],
    [
      'before the addresses',
      (s) => {
        negotiate(s);
        s.w(Reg.QUEUE_NUM, 8);
        s.w(Reg.QUEUE_DESC_LOW, RAM);
      },
      /addresses/,
    ],
    [
      'QueueNum not a power of two',
      (s) => {
        negotiate(s);
        program(s, 0, RAM + 0x1000, 6);
      },
      /power of two/,
    ],
    [
      'QueueNum above QueueNumMax',
      (s) => {
        negotiate(s);
        program(s, 0, RAM + 0x1000, 32);
      },
      /QueueNumMax/,
    ],
    [
      'QueueNum 0',
      (s) => {
        negotiate(s);
        program(s, 0, RAM + 0x1000, 0);
      },
      /QueueNum 0/,
    ],
    [
      'a misaligned descriptor table',
      (s) => {
        negotiate(s);
        program(s, 0, RAM + 0x1008);
      },
      /descriptor table .* aligned/,
    ],
    [
      'a misaligned used ring',
      (s) => {
        negotiate(s);
        program(s, 0);
        s.w(Reg.QUEUE_DEVICE_LOW, RAM + 0x802);
      },
      /device area .* aligned/,
    ],
    [
      'a ring outside RAM',
      (s) => {
        negotiate(s);
        program(s, 0, 0x1000);
      },
      /not inside one RAM/,
    ],
    [
      'an address above 2^53',
      (s) => {
        negotiate(s);
        program(s, 0);
        s.w(Reg.QUEUE_DRIVER_HIGH, 0x8000_0000);
      },
      /beyond 2\^53/,
    ],
    [
      'a used ring in read-only memory',
      (s) => {
        negotiate(s);
        program(s, 0);
        s.w(Reg.QUEUE_DEVICE_LOW, RAM + 0x10_0000);
      },
      /writable RAM/,
    ],
  ];
  for (const [what, prepare, reason] of refusals) {
    it(`leaves the queue not ready for QueueReady ${what}`, () => {
      const s = setup();
      prepare(s);
      s.w(Reg.QUEUE_SEL, 0);
      s.w(Reg.QUEUE_READY, 1);
      expect(s.r(Reg.QUEUE_READY)).toBe(0);
      expect(s.events.at(-1)).toMatch(reason);
    });
  }

  it('ignores queue register writes while the queue is ready or after DRIVER_OK', () => {
    const s = setup();
    negotiate(s);
    program(s, 0);
    s.w(Reg.QUEUE_READY, 1);
    s.w(Reg.QUEUE_NUM, 4);
    s.w(Reg.QUEUE_DESC_LOW, 0);
    program(s, 1, RAM + 0x3000);
    s.w(Reg.STATUS, ACK | DRIVER | FEATURES_OK | DRIVER_OK);
    // Queue 1 was programmed but never made ready; it cannot be enabled once the driver is live.
    s.w(Reg.QUEUE_SEL, 1);
    s.w(Reg.QUEUE_READY, 1);
    expect(s.r(Reg.QUEUE_READY)).toBe(0);
    s.w(Reg.QUEUE_SEL, 0);
    s.w(Reg.QUEUE_READY, 0);
    expect(s.r(Reg.QUEUE_READY)).toBe(1);
    expect(s.device.activation!.queues[0]!.layout.descTable).toBe(RAM + 0x1000);
    expect(s.device.activation!.queues[0]!.size).toBe(8);
    expect(s.device.activation!.queues[1]).toBeUndefined();
  });

  it('lets the driver stop a queue before DRIVER_OK by writing 0', () => {
    const s = setup();
    negotiate(s);
    program(s, 0);
    s.w(Reg.QUEUE_READY, 1);
    s.w(Reg.QUEUE_READY, 0);
    expect(s.r(Reg.QUEUE_READY)).toBe(0);
    s.w(Reg.QUEUE_NUM, 4);
    s.w(Reg.QUEUE_READY, 1);
    s.w(Reg.STATUS, ACK | DRIVER | FEATURES_OK | DRIVER_OK);
    expect(s.device.activation!.queues[0]!.size).toBe(4);
  });
});

describe('virtio-mmio configuration space', () => {
  it('delegates naturally aligned 8/16/32-bit accesses inside the config space', () => {
    const config = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
    const s = setup({ config });
    expect(s.transport.read(Reg.CONFIG, 1)).toBe(1);
    expect(s.transport.read(Reg.CONFIG + 2, 2)).toBe(0x0403);
    expect(s.transport.read(Reg.CONFIG + 4, 4)).toBe(0x0807_0605);
    expect(s.transport.read(Reg.CONFIG + 1, 2)).toBe(0);
    expect(s.transport.read(Reg.CONFIG + 2, 4)).toBe(0);
    expect(s.transport.read(Reg.CONFIG + 8, 1)).toBe(0);
    expect(s.transport.read(Reg.CONFIG + 6, 4)).toBe(0);
    expect(s.transport.read(Reg.CONFIG, 8)).toBe(0);
    s.transport.write(Reg.CONFIG + 1, 1, 0x1ff);
    s.transport.write(Reg.CONFIG + 4, 4, 0xdead_beef);
    s.transport.write(Reg.CONFIG + 7, 2, 1);
    s.transport.write(Reg.CONFIG + 8, 4, 1);
    expect(s.device.configWrites).toEqual([
      { offset: 1, size: 1, value: 0xff },
      { offset: 4, size: 4, value: 0xdead_beef },
    ]);
  });
});
