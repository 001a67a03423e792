import v8 from 'node:v8';
import vm from 'node:vm';
import { afterAll, bench, describe } from 'vitest';
import { MapFlag, Status } from '../protocol/constants.js';
import { encodeAttach, encodeMap, MapOffset } from '../protocol/requests.js';
import { createVirtioIommuHarness } from '../testing/index.js';

/**
 * Host memory per live mapping at 10^6 mappings, all created with MAP requests through the
 * request queue. Counted: the JS heap plus the typed arrays behind it (the mapping pool),
 * measured after a forced GC. Baseline in the same run: 10^6 mappings as the plainest JS
 * representation, one `{ start, end, phys, flags }` object each in an array.
 */

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const COUNT = 1_000_000;
const BATCH = 64;

function footprint(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

const results: string[] = [];

function mapMillion(): void {
  const h = createVirtioIommuHarness({ endpoints: [{ id: 1 }], bypass: false, maxMappingsPerDomain: COUNT });
  h.submitBatch([encodeAttach({ domain: 1, endpoint: 1 })]);
  const requests = Array.from({ length: BATCH }, () =>
    encodeMap({ domain: 1, virtStart: 0, virtEnd: 0xfff, physStart: 0, flags: MapFlag.READ }),
  );
  const views = requests.map((r) => new DataView(r.buffer));
  const statuses = new Uint8Array(BATCH);
  const before = footprint();
  let failures = 0;
  // IOVAs allocated downwards from the top of a 48-bit space, as Linux's IOVA allocator does.
  for (let done = 0; done < COUNT; done += BATCH) {
    for (let i = 0; i < BATCH; i++) {
      const page = 0xf_ffff_ffff - (done + i);
      const v = views[i]!;
      v.setUint32(MapOffset.VIRT_START, (page * 0x1000) >>> 0, true);
      v.setUint32(MapOffset.VIRT_START + 4, Math.floor(page / 0x10_0000), true);
      v.setUint32(MapOffset.VIRT_END, ((page * 0x1000) >>> 0) + 0xfff, true);
      v.setUint32(MapOffset.VIRT_END + 4, Math.floor(page / 0x10_0000), true);
      v.setUint32(MapOffset.PHYS_START, ((done + i) * 0x1000) >>> 0, true);
    }
    h.submitBatch(requests, 4, statuses);
    for (let i = 0; i < BATCH; i++) if (statuses[i] !== Status.OK) failures++;
  }
  const after = footprint();
  const live = h.device.mappingCount;
  results.push(
    `virtio-iommu device: ${live} live mappings, ${((after - before) / live).toFixed(1)} bytes/mapping (heap + typed arrays), ${failures} failed MAPs`,
  );
}

function objectsMillion(): void {
  const before = footprint();
  const list: { start: number; end: number; phys: number; flags: number }[] = [];
  for (let i = 0; i < COUNT; i++) {
    const start = (0xf_ffff_ffff - i) * 0x1000;
    list.push({ start, end: start + 0xfff, phys: i * 0x1000, flags: 1 });
  }
  const after = footprint();
  results.push(
    `baseline, one JS object per mapping in an array: ${((after - before) / list.length).toFixed(1)} bytes/mapping`,
  );
}

describe('host memory per mapping at 10^6 live mappings', () => {
  bench('baseline: 10^6 plain objects', objectsMillion, {
    iterations: 1,
    warmupIterations: 0,
    time: 0,
    warmupTime: 0,
  });
  bench('10^6 MAPs through the request queue', mapMillion, {
    iterations: 1,
    warmupIterations: 0,
    time: 0,
    warmupTime: 0,
  });
});

afterAll(() => {
  console.info(results.join('\n'));
});
