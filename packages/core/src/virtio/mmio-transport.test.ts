import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  createMmioBus,
  createTestMemory,
  TestVirtioDevice,
  type TestVirtioDeviceOptions,
} from '../testing/index.js';
import { VirtioMmioReg as Reg, VIRTIO_MMIO_MAGIC } from './mmio-registers.js';
import { VirtioMmioTransport } from './mmio-transport.js';
import { DeviceStatus, featureBit, VirtioFeature } from './types.js';

const RAM = 0x4000_0000;
const { ACKNOWLEDGE: ACK, DRIVER, FEATURES_OK, DRIVER_OK, DEVICE_NEEDS_RESET, FAILED } = DeviceStatus;
const V1 = featureBit(VirtioFeature.VERSION_1);

function setup(options: TestVirtioDeviceOptions = {}) {
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

type Setup = ReturnType<typeof setup>;

/** Status handshake up to FEATURES_OK with the given features, as raw register writes. */
function negotiate(s: Setup, features: bigint = V1): void {
  s.w(Reg.STATUS, ACK);
  s.w(Reg.STATUS, ACK | DRIVER);
  s.w(Reg.DRIVER_FEATURES_SEL, 0);
  s.w(Reg.DRIVER_FEATURES, Number(features & 0xffff_ffffn));
  s.w(Reg.DRIVER_FEATURES_SEL, 1);
  s.w(Reg.DRIVER_FEATURES, Number(features >> 32n));
  s.w(Reg.STATUS, ACK | DRIVER | FEATURES_OK);
}

/** Programs queue `index` with a valid ring at `base` (QueueReady not written). */
function program(s: Setup, index: number, base = RAM + 0x1000, num = 8): void {
  s.w(Reg.QUEUE_SEL, index);
  s.w(Reg.QUEUE_NUM, num);
  s.w(Reg.QUEUE_DESC_LOW, base);
  s.w(Reg.QUEUE_DESC_HIGH, 0);
  s.w(Reg.QUEUE_DRIVER_LOW, base + 0x400);
  s.w(Reg.QUEUE_DRIVER_HIGH, 0);
  s.w(Reg.QUEUE_DEVICE_LOW, base + 0x800);
  s.w(Reg.QUEUE_DEVICE_HIGH, 0);
}

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

describe('virtio-mmio notifications, interrupts and reset', () => {
  function live(s: Setup): void {
    negotiate(s);
    program(s, 0);
    s.w(Reg.QUEUE_READY, 1);
    s.w(Reg.STATUS, ACK | DRIVER | FEATURES_OK | DRIVER_OK);
  }

  it('forwards QueueNotify for ready queues only after DRIVER_OK', () => {
    const s = setup();
    negotiate(s);
    program(s, 0);
    s.w(Reg.QUEUE_READY, 1);
    s.w(Reg.QUEUE_NOTIFY, 0);
    expect(s.device.notifications).toEqual([]);
    s.w(Reg.STATUS, ACK | DRIVER | FEATURES_OK | DRIVER_OK);
    s.w(Reg.QUEUE_NOTIFY, 0);
    s.w(Reg.QUEUE_NOTIFY, 1);
    s.w(Reg.QUEUE_NOTIFY, 0xffff_ffff);
    expect(s.device.notifications).toEqual([0]);
  });

  it('sets InterruptStatus bits until acknowledged and lowers the line when none remain', () => {
    const s = setup();
    live(s);
    s.device.activation!.notifyUsed(0);
    s.transport.configChanged();
    expect(s.r(Reg.INTERRUPT_STATUS)).toBe(3);
    expect(s.line.level).toBe(true);
    s.w(Reg.INTERRUPT_ACK, 1);
    expect(s.r(Reg.INTERRUPT_STATUS)).toBe(2);
    expect(s.line.level).toBe(true);
    s.w(Reg.INTERRUPT_ACK, 2);
    expect(s.r(Reg.INTERRUPT_STATUS)).toBe(0);
    expect(s.line.level).toBe(false);
    expect(s.r(Reg.CONFIG_GENERATION)).toBe(1);
  });

  it('sends no used-buffer notification before DRIVER_OK', () => {
    const s = setup();
    negotiate(s);
    s.transport.configChanged();
    expect(s.r(Reg.INTERRUPT_STATUS)).toBe(0);
    expect(s.line.raises).toBe(0);
  });

  it('sets DEVICE_NEEDS_RESET with a config interrupt when a queue breaks or the device throws', () => {
    const s = setup();
    live(s);
    // The driver claims 9 buffers in a ring of 8.
    s.memory.writeU16(RAM + 0x1400 + 2, 9);
    s.w(Reg.QUEUE_NOTIFY, 0);
    expect(s.r(Reg.STATUS) & DEVICE_NEEDS_RESET).toBe(DEVICE_NEEDS_RESET);
    expect(s.r(Reg.INTERRUPT_STATUS)).toBe(2);
    expect(s.events.at(-1)).toMatch(/queue 0: .*ahead/);
    // Once in DEVICE_NEEDS_RESET, notifications are not forwarded.
    s.w(Reg.QUEUE_NOTIFY, 0);
    expect(s.device.notifications).toEqual([0]);

    const t = setup();
    live(t);
    t.device.notify = () => {
      throw new Error('boom');
    };
    const errors: unknown[] = [];
    t.transport.on('deviceError', (e) => errors.push(e));
    expect(() => t.w(Reg.QUEUE_NOTIFY, 0)).not.toThrow();
    expect(errors).toHaveLength(1);
    expect(t.r(Reg.STATUS) & DEVICE_NEEDS_RESET).toBe(DEVICE_NEEDS_RESET);
  });

  it('resets device and transport on Status 0 and ignores the old activation afterwards', () => {
    const s = setup();
    live(s);
    const old = s.device.activation!;
    old.notifyUsed(0);
    s.w(Reg.STATUS, ACK | DRIVER | FEATURES_OK | DRIVER_OK | FAILED);
    expect(s.r(Reg.STATUS) & FAILED).toBe(FAILED);
    s.w(Reg.STATUS, 0);
    expect(s.device.resets).toBe(1);
    expect(s.r(Reg.STATUS)).toBe(0);
    expect(s.r(Reg.INTERRUPT_STATUS)).toBe(0);
    expect(s.line.level).toBe(false);
    expect(s.r(Reg.QUEUE_READY)).toBe(0);
    expect(old.queues[0]!.broken).toBe(true);
    old.notifyUsed(0);
    old.needsReset('stale');
    expect(s.r(Reg.INTERRUPT_STATUS)).toBe(0);
    expect(s.r(Reg.STATUS)).toBe(0);
    // A reset clears the queue programming: QueueReady needs all addresses again.
    negotiate(s);
    s.w(Reg.QUEUE_NUM, 8);
    s.w(Reg.QUEUE_READY, 1);
    expect(s.r(Reg.QUEUE_READY)).toBe(0);
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

describe('virtio-mmio against arbitrary guest accesses (property)', () => {
  it('never throws and keeps the status invariants for any sequence of reads and writes', () => {
    const offset = fc.oneof(
      fc.constantFrom(...Object.values(Reg)),
      fc.integer({ min: -8, max: 0x220 }),
      fc.double(),
    );
    const access = fc.record({
      write: fc.boolean(),
      offset,
      size: fc.constantFrom(1, 2, 4, 8, 3 as 4),
      value: fc.oneof(
        fc.constantFrom(0, 1, ACK, ACK | DRIVER, 0x0b, 0x0f, 0xff, RAM, RAM + 0x1000, 8),
        fc.integer({ min: 0, max: 0xffff_ffff }),
        fc.double(),
      ),
    });
    fc.assert(
      fc.property(fc.array(access, { maxLength: 80 }), (accesses) => {
        const s = setup({ queueMaxSizes: [8, 8] });
        for (const a of accesses) {
          if (a.write) s.transport.write(a.offset, a.size as 4, a.value);
          else s.transport.read(a.offset, a.size as 4);
          const status = s.transport.status;
          if (status & DRIVER_OK) expect(status & FEATURES_OK).toBe(FEATURES_OK);
          if (status & FEATURES_OK) expect(status & DRIVER).toBe(DRIVER);
          if (status & DRIVER) expect(status & ACK).toBe(ACK);
          if (s.transport.interruptStatus === 0) expect(s.line.level).toBe(false);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('never throws when a guest walks through a valid setup and then scribbles', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 0x7f }), fc.integer({ min: 0, max: 0xffff_ffff })), {
          maxLength: 60,
        }),
        (writes) => {
          const s = setup();
          negotiate(s);
          program(s, 0);
          s.w(Reg.QUEUE_READY, 1);
          s.w(Reg.STATUS, ACK | DRIVER | FEATURES_OK | DRIVER_OK);
          for (const [word, value] of writes) s.w(word * 4, value);
          // Scribbling over the ring too must not make a notify throw.
          for (let i = 0; i < 0x100; i += 4)
            s.memory.writeU32(RAM + 0x1000 + i * 7, writes.length * 0x9e37_79b9);
          s.w(Reg.QUEUE_NOTIFY, 0);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('createMmioBus', () => {
  it('dispatches by address and counts unhandled accesses', () => {
    const s = setup();
    const bus = createMmioBus();
    bus.map(0x1000_0000, s.transport);
    expect(bus.read32(0x1000_0000)).toBe(VIRTIO_MMIO_MAGIC);
    expect(bus.read32(0x2000_0000)).toBe(0);
    expect(bus.unhandled).toBe(1);
    expect(() => bus.map(0x1000_0100, s.transport)).toThrow(/overlaps/);
  });
});
