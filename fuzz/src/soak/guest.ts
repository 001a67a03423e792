/**
 * Soak guest (runs on a vCPU, a worker thread in worker mode): negotiates with the virtio-iommu
 * over MMIO, attaches the DMA engine's endpoint, then loops: a batch of MAPs, a DMA fill through
 * them, the UNMAPs, and now and then a DMA to an unmapped IOVA whose fault report it collects and
 * whose event buffer it re-posts. Counts every request and DMA as one operation.
 */
import { type DriverQueue, type Segment, VirtioMmioDriver } from '@vmmkit/core';
import { encodeAttach, encodeMap, encodeUnmap, VIRTIO_IOMMU_DEVICE_ID } from '@vmmkit/virtio-iommu';
import { linuxDriverFeatures } from '@vmmkit/virtio-iommu/testing';
import { DmaEngineDriver, type GuestRuntime } from '@vmmkit/vmm';

const PAGE = 0x1000;
const BATCH = 32;
const IOVA = 0x100_0000;

export interface SoakGuestResult {
  operations: number;
  faults: number;
  reports: number;
  dmaErrors: number;
  badStatuses: number;
  heapStart: number;
  heapEnd: number;
}

export default async function soakGuest(rt: GuestRuntime): Promise<SoakGuestResult> {
  const { operations } = rt.args as { operations: number };
  const [probe] = rt.findVirtioDevices(VIRTIO_IOMMU_DEVICE_ID);
  if (probe === undefined) throw new Error('no virtio-iommu found');
  const irq = probe.node.irq;
  const wait = irq === null ? undefined : rt.completionWait(irq, 2);
  const virtio = new VirtioMmioDriver(rt.mmio, probe.node.base, rt.memory, rt.allocator);
  const { queues } = virtio.initialize({ wanted: linuxDriverFeatures(), queueSizes: [64, 16] });
  const requests = queues[0]!;
  const events = queues[1]!;
  const [dma] = DmaEngineDriver.probe(rt);
  if (dma === undefined) throw new Error('no DMA engine found');

  // Staging for one batch: 64 bytes of request and 4 of tail per slot.
  const staging = rt.allocator.alloc(PAGE);
  const tails = staging + 0x800;
  const buffers = rt.allocator.alloc(BATCH * PAGE);
  const eventArea = rt.allocator.alloc(PAGE);
  const eventSegments: Segment[][] = [];
  for (let i = 0; i < 16; i++) {
    eventSegments.push([{ addr: eventArea + i * 24, len: 24 }]);
    events.add([], eventSegments[i]!, i);
  }
  virtio.notify(1);

  let badStatuses = 0;
  const settle = (queue: DriverQueue, expected: number) => {
    let got = 0;
    for (let spins = 0; got < expected && spins < 200_000; spins++) {
      got += queue.collect(() => {});
      if (got < expected && spins > 4096) {
        wait?.();
        virtio.ackInterrupt(virtio.interruptStatus());
      }
    }
    if (got < expected) throw new Error(`the device completed ${got} of ${expected} requests`);
  };
  const submit = (list: readonly Uint8Array[]) => {
    list.forEach((request, i) => {
      rt.memory.write(staging + i * 64, request);
      rt.memory.fill(tails + i * 4, 4, 0xff);
      requests.add([{ addr: staging + i * 64, len: request.length }], [{ addr: tails + i * 4, len: 4 }], i);
    });
    if (requests.kickNeeded()) virtio.notify(0);
    settle(requests, list.length);
    for (let i = 0; i < list.length; i++) if (rt.memory.read(tails + i * 4, 1)[0] !== 0) badStatuses++;
    return list.length;
  };

  let done = submit([encodeAttach({ domain: 1, endpoint: dma.endpoint })]);
  // A full collection before each heap sample when gc() is exposed (pnpm soak exposes it).
  const collect = (globalThis as { gc?: () => void }).gc;
  collect?.();
  const heapStart = process.memoryUsage().heapUsed;
  let faults = 0;
  let reports = 0;
  let dmaErrors = 0;
  const maps = Array.from({ length: BATCH }, (_, i) =>
    encodeMap({
      domain: 1,
      virtStart: IOVA + i * PAGE,
      virtEnd: IOVA + i * PAGE + PAGE - 1,
      physStart: buffers + i * PAGE,
      flags: 3,
    }),
  );
  const unmaps = Array.from({ length: BATCH }, (_, i) =>
    encodeUnmap({ domain: 1, virtStart: IOVA + i * PAGE, virtEnd: IOVA + i * PAGE + PAGE - 1 }),
  );
  for (let round = 0; done < operations; round++) {
    done += submit(maps);
    const fill = await dma.run({ op: 'fill', dst: IOVA, length: BATCH * PAGE, value: round & 0xff });
    if (!fill.ok) dmaErrors++;
    done += 1 + submit(unmaps);
    if (round % 16 === 0) {
      const fault = await dma.run({ op: 'fill', dst: IOVA, length: 64, value: 1 });
      if (fault.ok) dmaErrors++;
      else faults++;
      done++;
      events.collect((token) => {
        reports++;
        events.add([], eventSegments[token as number]!, token);
      });
      if (events.kickNeeded()) virtio.notify(1);
    }
  }
  collect?.();
  return {
    operations: done,
    faults,
    reports,
    dmaErrors,
    badStatuses,
    heapStart,
    heapEnd: process.memoryUsage().heapUsed,
  };
}
