import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GuestMemory } from '../memory/guest-memory.js';
import { MockSplitQueue, type RawDescriptor } from '../testing/index.js';

/**
 * Hostile rings: arbitrary descriptor tables, indirect tables, ring entries and indexes. The
 * device side must never throw, must terminate, and must only hand out buffers in guest RAM.
 */

const RAM = 0x1_0000;
const RAM_SIZE = 0x1_0000;
const RO = 0x2_0000;
const DEVICE = 0x3_0000;
const TABLE = RAM + 0x8000;
/** The ring gets a bank of its own so that buffers the test writes through cannot rewrite its indexes. */
const RING = 0x5_0000;

function hostileMemory(): GuestMemory {
  const memory = new GuestMemory();
  memory.addBank({ gpa: RAM, size: RAM_SIZE });
  memory.addBank({ gpa: RO, size: 0x1000, readOnly: true });
  memory.addBank({ gpa: DEVICE, size: 0x1000, kind: 'device' });
  memory.addBank({ gpa: RING, size: 0x1000 });
  return memory;
}

const address = fc.oneof(
  { arbitrary: fc.integer({ min: RAM, max: RAM + RAM_SIZE - 1 }), weight: 6 },
  {
    arbitrary: fc.constantFrom(
      RAM,
      RAM + RAM_SIZE - 16,
      TABLE,
      RO,
      RO + 0xff0,
      DEVICE,
      0,
      RAM - 8,
      2 ** 53 - 4,
    ),
    weight: 2,
  },
  { arbitrary: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), weight: 1 },
);
const length = fc.oneof(
  { arbitrary: fc.integer({ min: 0, max: 64 }), weight: 6 },
  { arbitrary: fc.constantFrom(16, 32, 48, 0x1000, RAM_SIZE, 0xffff_ffff, 0x8000_0000), weight: 2 },
  { arbitrary: fc.integer({ min: 0, max: 0xffff_ffff }), weight: 1 },
);
// Mostly NEXT/WRITE combinations, sometimes INDIRECT, rarely arbitrary bits.
const flags = fc.oneof(
  { arbitrary: fc.constantFrom(0, 1, 2, 3), weight: 8 },
  { arbitrary: fc.integer({ min: 0, max: 7 }), weight: 2 },
  { arbitrary: fc.integer({ min: 0, max: 0xffff }), weight: 1 },
);

function descriptor(size: number): fc.Arbitrary<RawDescriptor> {
  return fc.record({
    addr: address,
    len: length,
    flags,
    next: fc.oneof(
      { arbitrary: fc.integer({ min: 0, max: size - 1 }), weight: 8 },
      { arbitrary: fc.integer({ min: 0, max: 2 * size + 1 }), weight: 1 },
      { arbitrary: fc.integer({ min: 0, max: 0xffff }), weight: 1 },
    ),
  });
}

/** Indirect descriptors pointing at the test's indirect table, with a plausible length. */
const toTable = fc.record({
  addr: fc.constant(TABLE),
  len: fc.oneof(
    fc.integer({ min: 1, max: 24 }).map((n) => 16 * n),
    fc.integer({ min: 0, max: 400 }),
  ),
  flags: fc.constantFrom(4, 4, 4, 6, 5),
  next: fc.integer({ min: 0, max: 3 }),
});

const hostileRing = fc.constantFrom(1, 2, 4, 8, 16).chain((size) =>
  fc.record({
    size: fc.constant(size),
    eventIdx: fc.boolean(),
    indirect: fc.boolean(),
    table: fc.array(fc.oneof({ arbitrary: descriptor(size), weight: 6 }, { arbitrary: toTable, weight: 1 }), {
      minLength: size,
      maxLength: size,
    }),
    indirectTable: fc.array(
      fc.oneof({ arbitrary: descriptor(24), weight: 8 }, { arbitrary: toTable, weight: 1 }),
      {
        maxLength: 24,
      },
    ),
    ring: fc.array(
      fc.oneof(
        { arbitrary: fc.integer({ min: 0, max: size - 1 }), weight: 8 },
        { arbitrary: fc.integer({ min: 0, max: 0xffff }), weight: 1 },
      ),
      {
        minLength: size,
        maxLength: size,
      },
    ),
    availIdx: fc.oneof(fc.integer({ min: 0, max: size + 2 }), fc.integer({ min: 0, max: 0xffff })),
  }),
);

describe('DeviceQueue on hostile rings (property)', () => {
  it('never throws, terminates, and only returns RAM buffers whose lengths add up', () => {
    fc.assert(
      fc.property(hostileRing, (ring) => {
        const memory = hostileMemory();
        const mock = new MockSplitQueue(memory, RING, ring.size);
        ring.table.forEach((d, i) => {
          mock.writeDescriptor(i, d);
        });
        mock.writeTable(TABLE, ring.indirectTable);
        ring.ring.forEach((head, slot) => {
          mock.setAvailEntry(slot, head);
        });
        mock.setAvailIdx(ring.availIdx);
        let brokenReports = 0;
        const queue = mock.deviceQueue({ eventIdx: ring.eventIdx, indirect: ring.indirect }, () => {
          brokenReports++;
        });
        const pending = ring.availIdx;
        let pops = 0;
        // Each pop consumes one entry, so at most `pending` results can come back.
        for (let r = queue.pop(); r !== null; r = queue.pop()) {
          pops++;
          expect(pops).toBeLessThanOrEqual(pending);
          if (r.ok) {
            const c = r.chain;
            let readable = 0;
            for (let i = 0; i < c.readableCount; i++) {
              const s = c.readable[i]!;
              expect(memory.isAccessible(s.addr, s.len, 'read')).toBe(true);
              readable += s.len;
            }
            let writable = 0;
            for (let i = 0; i < c.writableCount; i++) {
              const s = c.writable[i]!;
              expect(memory.isAccessible(s.addr, s.len, 'write')).toBe(true);
              writable += s.len;
            }
            expect(readable).toBe(c.readableLength);
            expect(writable).toBe(c.writableLength);
            expect(readable + writable).toBeLessThanOrEqual(2 ** 32);
            // Copying through the whole chain stays inside it.
            const bytes = new Uint8Array(Math.min(readable, 256));
            expect(c.readInto(bytes)).toBe(bytes.length);
            expect(c.writeFrom(new Uint8Array(Math.min(writable, 256)))).toBe(Math.min(writable, 256));
            queue.pushUsed(c.head, 0);
          } else {
            expect(r.head).toBeGreaterThanOrEqual(0);
            expect(r.head).toBeLessThanOrEqual(0xffff);
            queue.pushUsed(r.head, 0);
          }
          queue.needsInterrupt();
        }
        queue.enableNotifications(true);
        if (ring.availIdx > ring.size) {
          // More entries than the ring holds: broken, reported once, nothing popped.
          expect(queue.broken).toBe(true);
          expect(brokenReports).toBe(1);
          expect(pops).toBe(0);
        } else {
          expect(queue.broken).toBe(false);
          expect(pops).toBe(ring.availIdx);
          expect(mock.usedIdx).toBe(pops);
        }
      }),
      { numRuns: 400 },
    );
  });

  it('reports the same verdict as a reference walker written straight from the spec', () => {
    fc.assert(
      fc.property(hostileRing, (ring) => {
        const memory = hostileMemory();
        const mock = new MockSplitQueue(memory, RING, ring.size);
        ring.table.forEach((d, i) => {
          mock.writeDescriptor(i, d);
        });
        mock.writeTable(TABLE, ring.indirectTable);
        const head = ring.ring[0]!;
        mock.setAvailEntry(0, head);
        mock.setAvailIdx(1);
        const result = mock.deviceQueue({ indirect: ring.indirect }).pop();
        const expected = referenceWalk(memory, ring.size, head, ring.indirect);
        expect(result).not.toBeNull();
        if (result!.ok) {
          expect(expected).toEqual({
            ok: true,
            readable: result!.chain.readableLength,
            writable: result!.chain.writableLength,
          });
        } else {
          expect(expected).toEqual({ ok: false });
        }
      }),
      { numRuns: 400 },
    );
  });
});

type Verdict = { ok: true; readable: number; writable: number } | { ok: false };

/**
 * An independent, deliberately naive reading of virtio 1.2 §2.7.5: descriptors are read from
 * guest memory with the BigInt accessors and every rule is checked in the order the spec lists.
 */
function referenceWalk(memory: GuestMemory, size: number, head: number, indirect: boolean): Verdict {
  let tableAt = RING;
  let limit = size;
  let index = head;
  let visited = 0;
  let nested = false;
  let seenWrite = false;
  let readable = 0;
  let writable = 0;
  let buffers = 0;
  if (index >= size) return { ok: false };
  for (;;) {
    if (visited++ >= limit) return { ok: false };
    const at = tableAt + 16 * index;
    const addr = memory.readU64(at);
    const len = memory.readU32(at + 8);
    const f = memory.readU16(at + 12);
    const next = memory.readU16(at + 14);
    if (f & 4) {
      if (!indirect || nested || f & 1 || len === 0 || len % 16 !== 0) return { ok: false };
      if (addr >= 2n ** 53n || memory.ramBank(Number(addr), len) === null) return { ok: false };
      tableAt = Number(addr);
      limit = len / 16;
      index = 0;
      visited = 0;
      nested = true;
      continue;
    }
    // A chain holds at most max(queue size, 1024) buffers, indirect ones included.
    if (++buffers > (indirect ? Math.max(size, 1024) : size)) return { ok: false };
    const write = (f & 2) !== 0;
    if (!write && seenWrite) return { ok: false };
    if (write) seenWrite = true;
    if (write) writable += len;
    else readable += len;
    if (readable + writable > 2 ** 32) return { ok: false };
    if (len > 0 && (addr >= 2n ** 53n || !memory.isAccessible(Number(addr), len, write ? 'write' : 'read'))) {
      return { ok: false };
    }
    if ((f & 1) === 0) return { ok: true, readable, writable };
    if (next >= limit) return { ok: false };
    index = next;
  }
}
