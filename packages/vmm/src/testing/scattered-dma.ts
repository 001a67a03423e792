import type { GuestMemory, MemoryBank } from '@vmmkit/core';
import { encodeAttach, encodeMap, MapFlag, type VirtioIommuDevice } from '@vmmkit/virtio-iommu';
import { createVirtioIommuHarness } from '@vmmkit/virtio-iommu/testing';
import type { DmaEngine } from '../dma/dma-engine.js';
import { DmaOp, DmaReg } from '../dma/registers.js';

const PAGE = 0x1000;

/**
 * The DMA benchmarks' workload (perf-limits.md §4): a copy of `pages` 4 KiB pages whose source
 * and destination pages lie scattered at random over a 128 MiB bank, seen through a virtio-iommu
 * MAP/UNMAP domain of single-page mappings (source at 4 GiB, destination at 8 GiB, so each page
 * costs two translations), and the same pages' guest-physical addresses for a plain copy.
 */
export interface ScatteredDma {
  memory: GuestMemory;
  bank: MemoryBank;
  device: VirtioIommuDevice;
  endpoint: number;
  srcIova: number;
  dstIova: number;
  /** Guest-physical address of each source and destination page, in IOVA order. */
  srcPa: number[];
  dstPa: number[];
  /** Programs `engine` for the whole copy (COPY, both addresses, the length); ring its doorbell. */
  program(engine: DmaEngine): void;
  /** The plain scatter-gather copy of the same pages, addresses precomputed. */
  plainCopy(): void;
}

export function scatteredDma(pages = 256, seed = 12345): ScatteredDma {
  const endpoint = 1;
  const harness = createVirtioIommuHarness({ endpoints: [{ id: endpoint }], memorySize: 128 << 20 });
  const memory = harness.memory;
  const { base: ram, size: ramSize } = harness.guest.scratch;
  const bank = memory.ramBank(ram, PAGE)!;
  const picks = new Set<number>();
  let s = seed >>> 0 || 1;
  while (picks.size < 2 * pages) {
    // xorshift32: the same page order on every run
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    picks.add((s >>> 0) % (ramSize / PAGE));
  }
  const chosen = [...picks];
  const srcPa = chosen.slice(0, pages).map((p) => ram + p * PAGE);
  const dstPa = chosen.slice(pages).map((p) => ram + p * PAGE);
  // Each source page holds a byte of its own, so a copy to the wrong place shows.
  for (const pa of srcPa) bank.bytes.fill((pa >>> 12) & 0xff, pa - bank.gpa, pa - bank.gpa + PAGE);
  const srcIova = 0x1_0000_0000;
  const dstIova = 0x2_0000_0000;
  const requests = [encodeAttach({ domain: 1, endpoint })];
  for (let i = 0; i < pages; i++) {
    for (const [iova, pa] of [
      [srcIova + i * PAGE, srcPa[i]!],
      [dstIova + i * PAGE, dstPa[i]!],
    ] as const) {
      const flags = MapFlag.READ | MapFlag.WRITE;
      requests.push(
        encodeMap({ domain: 1, virtStart: iova, virtEnd: iova + PAGE - 1, physStart: pa, flags }),
      );
    }
  }
  const statuses = harness.submitBatch(requests, 4);
  if (statuses.some((status) => status !== 0)) {
    throw new Error(`the virtio-iommu refused the workload's ATTACH/MAP: ${[...statuses].join(',')}`);
  }
  const bytes = bank.bytes;
  const srcOff = Float64Array.from(srcPa, (pa) => pa - bank.gpa);
  const dstOff = Float64Array.from(dstPa, (pa) => pa - bank.gpa);
  return {
    memory,
    bank,
    device: harness.device,
    endpoint,
    srcIova,
    dstIova,
    srcPa,
    dstPa,
    program(engine) {
      engine.write(DmaReg.SRC_LO, 4, srcIova % 2 ** 32);
      engine.write(DmaReg.SRC_HI, 4, Math.floor(srcIova / 2 ** 32));
      engine.write(DmaReg.DST_LO, 4, dstIova % 2 ** 32);
      engine.write(DmaReg.DST_HI, 4, Math.floor(dstIova / 2 ** 32));
      engine.write(DmaReg.LENGTH, 4, pages * PAGE);
      engine.write(DmaReg.OP, 4, DmaOp.COPY);
    },
    plainCopy() {
      for (let i = 0; i < pages; i++) {
        const from = srcOff[i]!;
        bytes.set(bytes.subarray(from, from + PAGE), dstOff[i]!);
      }
    },
  };
}
