import v8 from 'node:v8';
import vm from 'node:vm';
import { MapFlag, Status } from '../protocol/constants.js';
import { encodeAttach, encodeMap, MapOffset } from '../protocol/requests.js';
import { createVirtioIommuHarness } from './harness.js';

/**
 * Host memory per live mapping, as the benchmarks measure it: the growth of the JS heap plus the
 * ArrayBuffers behind it (the mapping pool) after forced full collections, divided by the live
 * mapping count. Forcing a collection needs `gc`, which this enables for the process.
 */
let collect: (() => void) | null = null;

function footprint(): number {
  if (collect === null) {
    v8.setFlagsFromString('--expose-gc');
    collect = vm.runInNewContext('gc') as () => void;
  }
  collect();
  collect();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/**
 * `count` single-page MAPs through the request queue of a fresh harness, 64 per kick, with IOVAs
 * allocated downwards from the top of a 48-bit space as Linux's IOVA allocator does.
 */
export function mappingFootprint(count: number): { bytesPerMapping: number; live: number; failures: number } {
  const batch = 64;
  const h = createVirtioIommuHarness({ endpoints: [{ id: 1 }], bypass: false, maxMappingsPerDomain: count });
  h.submitBatch([encodeAttach({ domain: 1, endpoint: 1 })]);
  const requests = Array.from({ length: batch }, () =>
    encodeMap({ domain: 1, virtStart: 0, virtEnd: 0xfff, physStart: 0, flags: MapFlag.READ }),
  );
  const views = requests.map((r) => new DataView(r.buffer, r.byteOffset, r.byteLength));
  const statuses = new Uint8Array(batch);
  const before = footprint();
  let failures = 0;
  for (let done = 0; done < count; done += batch) {
    const n = Math.min(batch, count - done);
    for (let i = 0; i < n; i++) {
      const page = 0xf_ffff_ffff - (done + i);
      const v = views[i]!;
      v.setUint32(MapOffset.VIRT_START, (page * 0x1000) >>> 0, true);
      v.setUint32(MapOffset.VIRT_START + 4, Math.floor(page / 0x10_0000), true);
      v.setUint32(MapOffset.VIRT_END, ((page * 0x1000) >>> 0) + 0xfff, true);
      v.setUint32(MapOffset.VIRT_END + 4, Math.floor(page / 0x10_0000), true);
      v.setUint32(MapOffset.PHYS_START, ((done + i) * 0x1000) >>> 0, true);
    }
    h.submitBatch(n === batch ? requests : requests.slice(0, n), 4, statuses);
    for (let i = 0; i < n; i++) if (statuses[i] !== Status.OK) failures++;
  }
  const after = footprint();
  const live = h.device.mappingCount;
  return { bytesPerMapping: (after - before) / live, live, failures };
}

/** The plainest representation for comparison: one `{ start, end, phys, flags }` object per mapping. */
export function objectFootprint(count: number): number {
  const before = footprint();
  const list: { start: number; end: number; phys: number; flags: number }[] = [];
  for (let i = 0; i < count; i++) {
    const start = (0xf_ffff_ffff - i) * 0x1000;
    list.push({ start, end: start + 0xfff, phys: i * 0x1000, flags: 1 });
  }
  const after = footprint();
  return (after - before) / list.length;
}
