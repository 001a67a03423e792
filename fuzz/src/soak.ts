/**
 * Soak: mixed guest operations (ATTACH/MAP/UNMAP batches, DMA through the engine, faults with
 * event-buffer recycling) on one long-lived machine; heap and RSS sampled at start and end.
 * Runs against the virtio-iommu harness inline (the VM's worker mode with the DMA engine is not
 * wired here yet).
 */
import { encodeAttach, encodeMap, encodeUnmap } from '@vmmkit/virtio-iommu';
import { DmaOp, DmaReg } from '@vmmkit/vmm';
import { createWorld } from './world.js';

export interface SoakReport {
  operations: number;
  seconds: number;
  opsPerSecond: number;
  heapStart: number;
  heapEnd: number;
  rssStart: number;
  rssEnd: number;
  /** Allowed growth of heap and RSS from start to end, in bytes. */
  bound: number;
  held: boolean;
}

export function soak(operations: number, bound = 32 << 20): SoakReport {
  const world = createWorld({ bypass: false, narrowInput: false, maxMappingsPerDomain: 1 << 20 });
  const h = world.harness;
  h.submitBatch([encodeAttach({ domain: 1, endpoint: 1 }), encodeAttach({ domain: 2, endpoint: 2 })]);
  const engine = world.engines.get(1)!;
  const batch: Uint8Array[] = [];
  let done = 0;
  let x = 12345;
  const rand = () => {
    x = (x * 1103515245 + 12345) >>> 0;
    return x;
  };
  const step = () => {
    const r = rand() % 10;
    const page = rand() % 4096;
    if (r < 6) {
      batch.length = 0;
      for (let i = 0; i < 8; i++) {
        const iova = (page + i) * 0x1000;
        batch.push(
          encodeMap({
            domain: 1,
            virtStart: iova,
            virtEnd: iova + 0xfff,
            physStart: 0x4000_0000 + (i % 64) * 0x1000,
            flags: 3,
          }),
        );
      }
      batch.push(encodeUnmap({ domain: 1, virtStart: page * 0x1000, virtEnd: (page + 8) * 0x1000 - 1 }));
      h.submitBatch(batch);
      return batch.length;
    }
    if (r < 9) {
      engine.write(DmaReg.DST_LO, 4, page * 0x1000);
      engine.write(DmaReg.DST_HI, 4, 0);
      engine.write(DmaReg.LENGTH, 4, 64);
      engine.write(DmaReg.PASID, 4, 0);
      engine.write(DmaReg.OP, 4, DmaOp.FILL);
      engine.write(DmaReg.DOORBELL, 4, 1);
      return 1;
    }
    h.translate({ endpoint: 3, iova: BigInt(page * 0x1000), access: 'write' });
    h.events();
    return 1;
  };
  for (let i = 0; i < 2000; i++) done += step(); // warm-up: JIT and steady-state pools
  global.gc?.();
  const heapStart = process.memoryUsage().heapUsed;
  const rssStart = process.memoryUsage().rss;
  const t0 = performance.now();
  done = 0;
  while (done < operations) done += step();
  const seconds = (performance.now() - t0) / 1000;
  global.gc?.();
  const heapEnd = process.memoryUsage().heapUsed;
  const rssEnd = process.memoryUsage().rss;
  const held = heapEnd - heapStart < bound && rssEnd - rssStart < bound;
  return {
    operations: done,
    seconds,
    opsPerSecond: done / seconds,
    heapStart,
    heapEnd,
    rssStart,
    rssEnd,
    bound,
    held,
  };
}
