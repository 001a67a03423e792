import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { isVmmError, VmmError } from '../errors.js';
import { GuestMemory } from './guest-memory.js';

const KiB = 1024;
const MiB = 1024 * KiB;

function twoAdjacentRamBanks(): GuestMemory {
  const memory = new GuestMemory();
  memory.addBank({ gpa: 0x10_0000, size: 64 * KiB });
  memory.addBank({ gpa: 0x11_0000, size: 64 * KiB });
  return memory;
}

function faultOf(fn: () => unknown): VmmError {
  try {
    fn();
  } catch (error) {
    if (error instanceof VmmError) return error;
    throw error;
  }
  throw new Error('expected a VmmError');
}

describe('GuestMemory banks', () => {
  it('rejects overlapping banks and names the bank it overlaps', () => {
    const memory = new GuestMemory();
    memory.addBank({ gpa: 0x4000_0000, size: 1 * MiB });
    const error = faultOf(() => memory.addBank({ gpa: 0x400f_f000, size: 8 * KiB }));
    expect(error.code).toBe('EEXIST');
    expect(error.message).toContain('0x40000000');
    expect(memory.bankList).toHaveLength(1);
  });

  it.each([
    [{ gpa: 0x1001, size: 0x1000 }, 'EINVAL'],
    [{ gpa: 0x1000, size: 0x1800 }, 'EINVAL'],
    [{ gpa: 0x1000, size: 0 }, 'EINVAL'],
    [{ gpa: -0x1000, size: 0x1000 }, 'EINVAL'],
    [{ gpa: 2 ** 52 - 0x1000, size: 0x2000 }, 'ERANGE'],
  ])('rejects a badly placed bank %o with %s', (options, code) => {
    const memory = new GuestMemory();
    expect(faultOf(() => memory.addBank(options)).code).toBe(code);
    expect(memory.bankList).toHaveLength(0);
  });

  it('refuses a buffer that is not shared or too small', () => {
    const memory = new GuestMemory();
    const notShared = new ArrayBuffer(0x1000) as unknown as SharedArrayBuffer;
    expect(faultOf(() => memory.addBank({ gpa: 0, size: 0x1000, buffer: notShared })).code).toBe('EINVAL');
    const small = new SharedArrayBuffer(0x1000);
    expect(faultOf(() => memory.addBank({ gpa: 0, size: 0x2000, buffer: small })).code).toBe('ERANGE');
  });

  it('emits events on add and remove (hot-plug), and removeBank of an unknown start is ENOENT', () => {
    const memory = new GuestMemory();
    const added = vi.fn();
    const removed = vi.fn();
    memory.on('bankAdded', added).on('bankRemoved', removed);
    const bank = memory.addBank({ gpa: 0x2000, size: 0x1000 });
    expect(added).toHaveBeenCalledWith(bank);
    expect(faultOf(() => memory.removeBank(0x3000)).code).toBe('ENOENT');
    memory.removeBank(0x2000);
    expect(removed).toHaveBeenCalledWith(bank);
    expect(memory.isAccessible(0x2000, 1)).toBe(false);
  });

  it('forEachBank visits banks of the requested kinds in address order and stops on true', () => {
    const memory = new GuestMemory();
    memory.addBank({ gpa: 0x9000, size: 0x1000 });
    memory.addBank({ gpa: 0x1000, size: 0x1000, kind: 'device' });
    memory.addBank({ gpa: 0x5000, size: 0x1000 });
    memory.addBank({ gpa: 0x3000, size: 0x1000, kind: 'reserved' });
    const seen: number[] = [];
    memory.forEachBank('ram', (b) => {
      seen.push(b.gpa);
    });
    expect(seen).toEqual([0x5000, 0x9000]);
    const all: number[] = [];
    const stopped = memory.forEachBank('all', (b) => {
      all.push(b.gpa);
      return b.gpa === 0x3000;
    });
    expect(stopped).toBe(true);
    expect(all).toEqual([0x1000, 0x3000]);
    const nonRam: string[] = [];
    memory.forEachBank(['device', 'reserved'], (b) => {
      nonRam.push(b.kind);
    });
    expect(nonRam).toEqual(['device', 'reserved']);
  });

  it('rebuilds the same memory from descriptors, sharing the buffers', () => {
    const memory = twoAdjacentRamBanks();
    memory.writeU32(0x10_0010, 0xdeadbeef);
    const copy = GuestMemory.fromBanks(memory.describe());
    expect(copy.readU32(0x10_0010)).toBe(0xdeadbeef);
    copy.writeU8(0x11_0000, 7);
    expect(memory.readU8(0x11_0000)).toBe(7);
  });
});

describe('GuestMemory accesses', () => {
  it('reads and writes every width little-endian', () => {
    const memory = twoAdjacentRamBanks();
    memory.writeU64(0x10_0100, 0x0102030405060708n);
    expect([...memory.read(0x10_0100, 8)]).toEqual([8, 7, 6, 5, 4, 3, 2, 1]);
    expect(memory.readU8(0x10_0100)).toBe(8);
    expect(memory.readU16(0x10_0100)).toBe(0x0708);
    expect(memory.readU32(0x10_0104)).toBe(0x01020304);
    expect(memory.readU64(0x10_0100)).toBe(0x0102030405060708n);
    const pair = new Uint32Array(2);
    memory.readU64Pair(0x10_0100, pair);
    expect([...pair]).toEqual([0x05060708, 0x01020304]);
    memory.writeU64Pair(0x10_0200, 0xffffffff, 0x80000000);
    expect(memory.readU64(0x10_0200)).toBe(0x80000000ffffffffn);
    memory.writeU16(0x10_0300, 0xabcd);
    expect(memory.readU16(0x10_0300)).toBe(0xabcd);
  });

  it('treats adjacent RAM banks as one range for every access width', () => {
    const memory = twoAdjacentRamBanks();
    const seam = 0x11_0000;
    memory.writeU64(seam - 4, 0x1122334455667788n);
    expect(memory.readU64(seam - 4)).toBe(0x1122334455667788n);
    expect(memory.readU32(seam - 2)).toBe(0x33445566);
    memory.write(seam - 3, Uint8Array.of(1, 2, 3, 4, 5, 6));
    expect([...memory.read(seam - 3, 6)]).toEqual([1, 2, 3, 4, 5, 6]);
    const into = new Uint8Array(6);
    memory.readInto(seam - 3, into);
    expect([...into]).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('refuses a view across two banks but allows copies', () => {
    const memory = twoAdjacentRamBanks();
    expect(faultOf(() => memory.view(0x10_fff0, 0x20)).code).toBe('EFAULT');
    expect(memory.read(0x10_fff0, 0x20)).toHaveLength(0x20);
    const view = memory.view(0x10_0000, 16, 'write');
    view[0] = 42;
    expect(memory.readU8(0x10_0000)).toBe(42);
  });

  it.each([
    ['a gap', 0x12_0000, 'gap'],
    ['the end of RAM', 0x11_fffc, 'gap'],
    ['a device bank', 0x20_0000, 'device'],
    ['a reserved bank', 0x30_0000, 'reserved'],
  ])('refuses an access that touches %s, naming the address', (_what, gpa, reason) => {
    const memory = twoAdjacentRamBanks();
    memory.addBank({ gpa: 0x20_0000, size: 0x1000, kind: 'device' });
    memory.addBank({ gpa: 0x30_0000, size: 0x1000, kind: 'reserved' });
    const error = faultOf(() => memory.readU64(gpa));
    expect(error.code).toBe('EFAULT');
    expect(error.details.reason).toBe(reason);
    expect(error.message).toContain(`0x${gpa.toString(16)}`);
    expect(faultOf(() => memory.write(gpa, new Uint8Array(8))).code).toBe('EFAULT');
  });

  it('refuses writes to a read-only bank and leaves memory unchanged even when the write starts in RAM', () => {
    const memory = new GuestMemory();
    memory.addBank({ gpa: 0x0000, size: 0x1000 });
    memory.addBank({ gpa: 0x1000, size: 0x1000, readOnly: true });
    expect(memory.readU32(0x1000)).toBe(0);
    const error = faultOf(() => memory.write(0xffc, Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8)));
    expect(error.details.reason).toBe('read-only');
    expect(memory.readU32(0xffc)).toBe(0);
    expect(faultOf(() => memory.writeU32(0x1000, 1)).details.reason).toBe('read-only');
  });

  it('rejects non-integer and negative addresses and lengths', () => {
    const memory = twoAdjacentRamBanks();
    expect(memory.isAccessible(Number.NaN, 4)).toBe(false);
    expect(memory.isAccessible(0x10_0000, -1)).toBe(false);
    expect(memory.isAccessible(1_048_576.5, 1)).toBe(false);
    expect(faultOf(() => memory.read(2 ** 60, 4)).code).toBe('EFAULT');
  });

  it.each<[string, (m: GuestMemory) => unknown]>([
    ['readU8 at a fractional address', (m) => m.readU8(0x10_0000 + 0.5)],
    ['readU32 at a fractional address', (m) => m.readU32(0x10_0004 + 0.25)],
    ['readU64 at a fractional address', (m) => m.readU64(0x10_0008 + 0.5)],
    ['readU64Pair at a fractional address', (m) => m.readU64Pair(0x10_0008 + 0.5, new Uint32Array(2))],
    ['writeU16 at a fractional address', (m) => m.writeU16(0x10_0000 + 0.5, 1)],
    ['writeU64Pair at a fractional address', (m) => m.writeU64Pair(0x10_0000 + 0.5, 1, 2)],
    ['read with a negative length', (m) => m.read(0x10_0010, -4)],
    ['read with a fractional length', (m) => m.read(0x10_0010, 2.5)],
    ['view with a negative length', (m) => m.view(0x10_0010, -1)],
    ['fill with a negative length', (m) => m.fill(0x10_0010, -1)],
  ])('every accessor refuses %s (EFAULT, reason range) instead of truncating it', (_what, access) => {
    const memory = twoAdjacentRamBanks();
    memory.writeU64(0x10_0000, 0x1122334455667788n);
    // Warm the one-bank memo with a good access first: the check must not be skipped by it.
    expect(memory.readU8(0x10_0000)).toBe(0x88);
    const error = faultOf(() => access(memory));
    expect(error.code).toBe('EFAULT');
    expect(error.details.reason).toBe('range');
    expect(memory.readU64(0x10_0000)).toBe(0x1122334455667788n);
  });

  it('never reaches outside RAM for arbitrary accesses (property)', () => {
    const memory = twoAdjacentRamBanks();
    memory.addBank({ gpa: 0x12_0000, size: 0x1000, kind: 'device' });
    const ramStart = 0x10_0000;
    const ramEnd = 0x12_0000;
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0x14_0000 }),
        fc.integer({ min: 0, max: 0x3_0000 }),
        (gpa, length) => {
          // A zero-length access touches no byte, so it is allowed anywhere.
          const inside = length === 0 || (gpa >= ramStart && gpa + length <= ramEnd);
          expect(memory.isAccessible(gpa, length)).toBe(inside);
          try {
            const bytes = memory.read(gpa, length);
            expect(inside).toBe(true);
            expect(bytes).toHaveLength(length);
          } catch (error) {
            expect(inside).toBe(false);
            expect(isVmmError(error, 'EFAULT')).toBe(true);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
