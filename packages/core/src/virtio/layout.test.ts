import { describe, expect, it } from 'vitest';
import { isVmmError } from '../errors.js';
import { isValidQueueSize, layoutProblem, needEvent, splitQueueBytes, splitQueueLayout } from './layout.js';

describe('splitQueueLayout', () => {
  it('places the avail ring right after 16 bytes per descriptor and the used ring at the next 4-byte boundary', () => {
    // size 1: desc 16 B, avail 6+2 = 8 B (ends at 24), used at 24.
    expect(splitQueueLayout(0x1000, 1)).toEqual({
      size: 1,
      descTable: 0x1000,
      availRing: 0x1010,
      usedRing: 0x1018,
    });
    // size 2: desc 32 B, avail 6+4 = 10 B ends at 42 → used at 44.
    expect(splitQueueLayout(0, 2)).toEqual({ size: 2, descTable: 0, availRing: 32, usedRing: 44 });
    // size 256: desc 4096, avail 518 → 4614 → aligned 4616.
    expect(splitQueueLayout(0, 256).usedRing).toBe(4616);
  });

  it('reports the total size of the three parts', () => {
    expect(splitQueueBytes(1)).toBe(24 + 6 + 8);
    expect(splitQueueBytes(256)).toBe(4616 + 6 + 8 * 256);
    expect(splitQueueBytes(32768)).toBe(16 * 32768 + 6 + 2 * 32768 + 2 + 6 + 8 * 32768);
  });

  it('refuses sizes that are not powers of two up to 32768 and misaligned bases', () => {
    for (const size of [0, 3, 12, 65536, 1.5, -2]) {
      expect(() => splitQueueLayout(0, size)).toThrow(/power of two/);
      expect(isValidQueueSize(size)).toBe(false);
    }
    expect(() => splitQueueLayout(8, 4)).toThrow(/aligned to 16/);
    try {
      splitQueueBytes(7);
    } catch (error) {
      expect(isVmmError(error, 'EINVAL')).toBe(true);
    }
  });

  it('checks the spec alignments of a given layout', () => {
    expect(layoutProblem({ size: 4, descTable: 0x1000, availRing: 0x2000, usedRing: 0x3000 })).toBeNull();
    expect(layoutProblem({ size: 4, descTable: 0x1008, availRing: 0x2000, usedRing: 0x3000 })).toMatch(
      /descriptor/,
    );
    expect(layoutProblem({ size: 4, descTable: 0x1000, availRing: 0x2001, usedRing: 0x3000 })).toMatch(
      /available/,
    );
    expect(layoutProblem({ size: 4, descTable: 0x1000, availRing: 0x2000, usedRing: 0x3002 })).toMatch(
      /used/,
    );
    expect(layoutProblem({ size: 5, descTable: 0x1000, availRing: 0x2000, usedRing: 0x3000 })).toMatch(
      /size/,
    );
  });
});

describe('needEvent (virtio 1.2 §2.7.10)', () => {
  it('fires when the index moves past the event index', () => {
    // used_event 0: notify after the first buffer, not again until the index wraps.
    expect(needEvent(0, 1, 0)).toBe(true);
    expect(needEvent(0, 2, 1)).toBe(false);
    expect(needEvent(5, 6, 3)).toBe(true);
    expect(needEvent(5, 5, 3)).toBe(false);
    expect(needEvent(0xffff, 2, 0xfffe)).toBe(true);
    expect(needEvent(3, 3, 3)).toBe(false);
  });
});
