import { isVmmError, type MmioHandler } from '@vmmkit/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MmioBus } from './mmio-bus.js';

function recorder(name: string, size: number) {
  const seen: string[] = [];
  const handler: MmioHandler = {
    name,
    size,
    read: (offset, width) => {
      seen.push(`r${width}@${offset}`);
      return offset + 1;
    },
    write: (offset, width, value) => void seen.push(`w${width}@${offset}=${value}`),
  };
  return { handler, seen };
}

describe('MmioBus', () => {
  it('dispatches each access to the window holding it, with the offset inside the window', () => {
    const bus = new MmioBus();
    const a = recorder('a', 0x200);
    const b = recorder('b', 0x1000);
    bus.register(0x1000, a.handler);
    bus.register(0x3000, b.handler);
    expect(bus.read(0x1000, 4)).toBe(1);
    expect(bus.read(0x11fc, 4)).toBe(0x1fd);
    bus.write(0x3ff8, 8, 5);
    expect(a.seen).toEqual(['r4@0', 'r4@508']);
    expect(b.seen).toEqual(['w8@4088=5']);
  });

  it('reads 0 and drops writes nobody claims (gaps, straddles), and counts them', () => {
    const bus = new MmioBus();
    const a = recorder('a', 0x200);
    bus.register(0x1000, a.handler);
    expect(bus.read(0x0ffc, 4)).toBe(0);
    expect(bus.read(0x11fe, 4)).toBe(0); // straddles the end of the window
    bus.write(0x1200, 4, 1);
    expect(a.seen).toEqual([]);
    expect(bus.stats).toEqual({ unclaimedReads: 2, unclaimedWrites: 1, handlerErrors: 0 });
  });

  it('refuses overlapping windows and keeps a handler exception away from the guest', () => {
    const bus = new MmioBus();
    bus.register(0x1000, recorder('a', 0x1000).handler);
    const overlap = (() => {
      try {
        bus.register(0x1800, recorder('b', 0x1000).handler);
      } catch (e) {
        return e;
      }
    })();
    expect(isVmmError(overlap, 'EEXIST')).toBe(true);
    expect(String(overlap)).toContain("overlaps 'a'");
    const errors: unknown[] = [];
    bus.onHandlerError = (e) => errors.push(e);
    bus.register(0x8000, {
      name: 'broken',
      size: 8,
      read: () => {
        throw new Error('device bug');
      },
      write: () => {
        throw new Error('device bug');
      },
    });
    expect(bus.read(0x8000, 4)).toBe(0);
    bus.write(0x8000, 4, 1);
    expect(errors).toHaveLength(2);
    expect(bus.stats.handlerErrors).toBe(2);
    expect(bus.unregister(0x8000).name).toBe('broken');
    expect(bus.read(0x8000, 4)).toBe(0);
  });

  it('finds the same window a linear scan does, for any layout and address', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 0, max: 63 }), { maxLength: 20 }),
        fc.array(fc.integer({ min: 0, max: 64 * 0x100 }), { maxLength: 50 }),
        (slots, addresses) => {
          const bus = new MmioBus();
          const windows = slots.map((slot) => ({ base: slot * 0x100, size: 0x80 + (slot % 4) * 0x20 }));
          for (const [i, w] of windows.entries()) {
            bus.register(w.base, { name: `d${i}`, size: w.size, read: () => i + 1, write: () => {} });
          }
          return addresses.every((gpa) => {
            const owner = windows.findIndex((w) => gpa >= w.base && gpa + 4 <= w.base + w.size);
            return bus.read(gpa, 4) === owner + 1;
          });
        },
      ),
    );
  });
});
