/**
 * The soak on a VM: one vCPU (a worker thread in worker mode) runs `guest.ts` against the
 * virtio-iommu and a DMA engine; the host samples its heap and RSS before and after.
 */
import { createVm, dmaEngine, type VcpuMode } from '@vmmkit/vmm';
import type { SoakGuestResult } from './guest.js';
import { soakIommu } from './iommu-spec.js';

export interface VmSoakReport extends SoakGuestResult {
  mode: VcpuMode;
  seconds: number;
  opsPerSecond: number;
  hostHeapStart: number;
  hostHeapEnd: number;
  rssStart: number;
  rssEnd: number;
  /** Allowed RSS growth (and heap growth when no gc() is exposed). */
  bound: number;
  /** Allowed heap growth, host and guest: tight when gc() is exposed, as `pnpm soak` does. */
  heapBound: number;
  held: boolean;
  deviceFaults: { raised: number; delivered: number; dropped: number };
}

const ENDPOINT = 0x10;
/** Heap growth allowed after full collections: nothing the soak does should stay alive. */
const COLLECTED_HEAP_BOUND = 8 << 20;

export async function vmSoak(
  operations: number,
  mode: VcpuMode = 'worker',
  bound = 48 << 20,
): Promise<VmSoakReport> {
  const iommu = soakIommu([ENDPOINT]);
  const vm = await createVm({
    memory: 32 << 20,
    cpus: 1,
    mode,
    devices: [iommu, dmaEngine({ name: 'dma0', endpoint: ENDPOINT })],
  });
  try {
    // A short first run warms the JIT on both sides, so the start sample is steady state.
    await vm.run({ module: new URL('./guest.ts', import.meta.url), args: { operations: 2000 } });
    global.gc?.();
    const hostHeapStart = process.memoryUsage().heapUsed;
    const rssStart = process.memoryUsage().rss;
    const t0 = performance.now();
    const [result] = (await vm.run({
      module: new URL('./guest.ts', import.meta.url),
      args: { operations },
    })) as SoakGuestResult[];
    const seconds = (performance.now() - t0) / 1000;
    global.gc?.();
    const hostHeapEnd = process.memoryUsage().heapUsed;
    const rssEnd = process.memoryUsage().rss;
    const r = result!;
    // Without gc() the heap samples include garbage not yet collected: only the loose bound holds.
    const heapBound = typeof global.gc === 'function' ? Math.min(bound, COLLECTED_HEAP_BOUND) : bound;
    const held =
      hostHeapEnd - hostHeapStart < heapBound &&
      r.heapEnd - r.heapStart < heapBound &&
      rssEnd - rssStart < bound;
    const s = iommu.device().faultStats;
    return {
      ...r,
      mode,
      seconds,
      opsPerSecond: r.operations / seconds,
      hostHeapStart,
      hostHeapEnd,
      rssStart,
      rssEnd,
      bound,
      heapBound,
      held,
      deviceFaults: { raised: s.raised, delivered: s.delivered, dropped: s.dropped },
    };
  } finally {
    await vm.destroy();
  }
}
