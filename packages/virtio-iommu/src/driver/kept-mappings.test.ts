import { describe, expect, it } from 'vitest';
import { KeptMappings } from './kept-mappings.js';

/** The spec's UNMAP examples that succeed (virtio 1.2 §5.13.6.6), applied to the driver's copy. */
describe('KeptMappings', () => {
  const starts = (k: KeptMappings) => k.list().map((m) => [m.start, m.end]);

  it('unmap(0,9) over map(0,9) and over map(0,4),map(5,9) removes them all', () => {
    const one = new KeptMappings();
    one.mapped(0n, 9n, 0x1000n, 1);
    one.unmapped(0n, 9n);
    expect(starts(one)).toEqual([]);
    const two = new KeptMappings();
    two.mapped(0n, 4n, 0n, 1);
    two.mapped(5n, 9n, 0n, 1);
    two.unmapped(0n, 9n);
    expect(starts(two)).toEqual([]);
  });

  it('unmap(0,4) over map(0,4),map(5,9) removes the first; unmap(0,9) over map(0,4) removes it', () => {
    const k = new KeptMappings();
    k.mapped(0n, 4n, 0n, 1);
    k.mapped(5n, 9n, 0n, 1);
    k.unmapped(0n, 4n);
    expect(starts(k)).toEqual([[5n, 9n]]);
    const single = new KeptMappings();
    single.mapped(0n, 4n, 0n, 1);
    single.unmapped(0n, 9n);
    expect(single.size).toBe(0);
  });

  it('unmap(0,14) over map(0,4),map(10,14) removes both; a range over nothing changes nothing', () => {
    const k = new KeptMappings();
    k.mapped(0n, 4n, 0n, 1);
    k.mapped(10n, 14n, 0n, 1);
    k.unmapped(20n, 30n);
    expect(k.size).toBe(2);
    k.unmapped(0n, 14n);
    expect(k.size).toBe(0);
  });

  it('keeps 64-bit bounds exact and lists in address order', () => {
    const k = new KeptMappings();
    k.mapped(0xffff_ffff_ffff_f000n, 0xffff_ffff_ffff_ffffn, 0x4000_0000n, 3);
    k.mapped(0x1000n, 0x1fffn, 0x5000n, 1);
    expect(k.list()).toEqual([
      { start: 0x1000n, end: 0x1fffn, phys: 0x5000n, flags: 1 },
      { start: 0xffff_ffff_ffff_f000n, end: 0xffff_ffff_ffff_ffffn, phys: 0x4000_0000n, flags: 3 },
    ]);
  });
});
