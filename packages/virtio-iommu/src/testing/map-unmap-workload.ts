import { MapFlag } from '../protocol/constants.js';
import { encodeAttach, encodeMap, encodeUnmap } from '../protocol/requests.js';
import type { VirtioIommuHarness } from './harness.js';

/**
 * The MAP/UNMAP workload of the benchmarks: endpoint 1 attached to domain 1, then `count` MAP
 * requests of one 4K page each (READ|WRITE, IOVAs near 2^48 as a Linux guest allocates them)
 * and the UNMAPs of the same pages, encoded once so that every round sends the same bytes.
 */
export function mapUnmapWorkload(
  harness: VirtioIommuHarness,
  count: number,
): { maps: Uint8Array[]; unmaps: Uint8Array[] } {
  harness.submitBatch([encodeAttach({ domain: 1, endpoint: 1 })]);
  const iova = (i: number) => 0xffff_0000_0000n + BigInt(i) * 0x1000n;
  const maps = Array.from({ length: count }, (_, i) =>
    encodeMap({
      domain: 1,
      virtStart: iova(i),
      virtEnd: iova(i) + 0xfffn,
      physStart: 0x10_0000 + i * 0x1000,
      flags: MapFlag.READ | MapFlag.WRITE,
    }),
  );
  const unmaps = Array.from({ length: count }, (_, i) =>
    encodeUnmap({ domain: 1, virtStart: iova(i), virtEnd: iova(i) + 0xfffn }),
  );
  return { maps, unmaps };
}
