/** The ranges an emulated identity domain maps: guest RAM 1:1 minus reserved regions (Linux without bypass). */
import type { GuestMemory } from '@vmmkit/core';
import type { ReservedRegion } from './probe-parser.js';

const maxBig = (a: bigint, b: bigint): bigint => (a > b ? a : b);
const minBig = (a: bigint, b: bigint): bigint => (a < b ? a : b);

/**
 * `[start, end)` ranges covering every RAM bank except `holes` (inclusive bounds), shrunk to
 * granule boundaries and clipped to the input range (inclusive).
 */
export function identityRanges(
  memory: GuestMemory,
  holes: readonly ReservedRegion[],
  granule: bigint,
  input: { start: bigint; end: bigint },
): [bigint, bigint][] {
  const out: [bigint, bigint][] = [];
  memory.forEachBank('ram', (bank) => {
    let pieces: [bigint, bigint][] = [[BigInt(bank.gpa), BigInt(bank.end) - 1n]];
    for (const hole of holes) {
      const next: [bigint, bigint][] = [];
      for (const [s, e] of pieces) {
        if (hole.end < s || hole.start > e) next.push([s, e]);
        else {
          if (hole.start > s) next.push([s, hole.start - 1n]);
          if (hole.end < e) next.push([hole.end + 1n, e]);
        }
      }
      pieces = next;
    }
    for (const [s, e] of pieces) {
      const lo = ((maxBig(s, input.start) + granule - 1n) / granule) * granule;
      const hi = ((minBig(e, input.end) + 1n) / granule) * granule;
      if (hi > lo) out.push([lo, hi]);
    }
  });
  return out;
}
