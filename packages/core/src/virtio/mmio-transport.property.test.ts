import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createMmioBus } from '../testing/index.js';
import { VirtioMmioReg as Reg, VIRTIO_MMIO_MAGIC } from './mmio-registers.js';
import {
  ACK,
  DRIVER,
  DRIVER_OK,
  FEATURES_OK,
  negotiate,
  program,
  RAM,
  setup,
} from './mmio-transport.fixture.js';

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
