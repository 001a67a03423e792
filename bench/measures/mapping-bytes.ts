import v8 from 'node:v8';
import vm from 'node:vm';
import { encodeAttach, encodeMap, MapFlag, MapOffset, Status } from '@vmmkit/virtio-iommu';
import { createVirtioIommuHarness } from '@vmmkit/virtio-iommu/testing';
import { expect, type Measure } from '../measure.js';

const COUNT = 1_000_000;
const BATCH = 64;

let gc: () => void = () => {};

/** The JS heap plus the ArrayBuffers it holds, after full collections. */
function footprint(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

function deviceBytesPerMapping(): number {
  const h = createVirtioIommuHarness({ endpoints: [{ id: 1 }], bypass: false, maxMappingsPerDomain: COUNT });
  h.submitBatch([encodeAttach({ domain: 1, endpoint: 1 })]);
  const requests = Array.from({ length: BATCH }, () =>
    encodeMap({ domain: 1, virtStart: 0, virtEnd: 0xfff, physStart: 0, flags: MapFlag.READ }),
  );
  const views = requests.map((r) => new DataView(r.buffer, r.byteOffset, r.byteLength));
  const statuses = new Uint8Array(BATCH);
  const before = footprint();
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
    for (let i = 0; i < BATCH; i++) expect(statuses[i] === Status.OK, 'every MAP answered OK');
  }
  const after = footprint();
  expect(h.device.mappingCount === COUNT, `${COUNT} live mappings`);
  return (after - before) / h.device.mappingCount;
}

function objectBytesPerMapping(): number {
  const before = footprint();
  const list: { start: number; end: number; phys: number; flags: number }[] = [];
  for (let i = 0; i < COUNT; i++) {
    const start = (0xf_ffff_ffff - i) * 0x1000;
    list.push({ start, end: start + 0xfff, phys: i * 0x1000, flags: 1 });
  }
  const after = footprint();
  expect(list.length === COUNT, 'all objects alive');
  return (after - before) / list.length;
}

export const mappingBytes: Measure = {
  id: 'mapping-bytes',
  unit: 'bytes/mapping',
  baseline: 'one plain JS object per mapping in an array',
  target: 'value <= 64 (ratio = value / baseline)',
  meets: (r) => r.value <= 64,
  method:
    'Host memory per live mapping at 10^6 mappings, all created by MAP requests (4K each, IOVAs downwards from the top of a 48-bit space, as Linux allocates them) through the request queue of the test harness, 64 per kick: the growth of `heapUsed + arrayBuffers` after forced full GCs, divided by the live mapping count. Baseline, same process: 10^6 `{ start, end, phys, flags }` objects in an array. Lower is better; ratio = value / baseline.',
  run() {
    v8.setFlagsFromString('--expose-gc');
    gc = vm.runInNewContext('gc') as () => void;
    const value = deviceBytesPerMapping();
    const baselineValue = objectBytesPerMapping();
    return { value, baselineValue, ratio: value / baselineValue };
  },
};
