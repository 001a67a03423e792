/**
 * The demo's guest program (`vmm run`): sets up the IOMMU the way `--iommu`/`--nested` say,
 * runs one DMA copy per context (PASID) with a distinct pattern, verifies every byte and the
 * engine's CRC-32, then provokes one translation fault on purpose and collects its report.
 */
import { crc32 } from 'node:zlib';
import { DmaEngineDriver } from '../dma/dma-driver.js';
import type { GuestRuntime } from '../vcpu/guest-runtime.js';
import { type DmaSpace, identitySpace } from './dma-space.js';
import type { DemoArgs, DemoFault, DemoReport, DemoTransfer } from './report.js';

function pattern(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let x = (seed * 0x9e3779b1) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    // xorshift32: a different, non-repeating stream per context
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x & 0xff;
  }
  return bytes;
}

async function transfer(
  rt: GuestRuntime,
  dma: DmaEngineDriver,
  space: DmaSpace,
  context: number | null,
  length: number,
): Promise<DemoTransfer> {
  const src = rt.allocator.alloc(length);
  const dst = rt.allocator.alloc(length);
  try {
    const data = pattern(length, (context ?? 0) + 1);
    rt.memory.write(src, data);
    const srcIova = space.map(context, src, length);
    const dstIova = space.map(context, dst, length);
    const pasid = context ?? undefined;
    const copy = await dma.run({ op: 'copy', src: srcIova, dst: dstIova, length, pasid });
    const verified = copy.ok && Buffer.compare(rt.memory.read(dst, length), data) === 0;
    const sum = copy.ok ? await dma.run({ op: 'crc32', src: dstIova, length, pasid }) : null;
    return {
      pasid: context,
      srcIova,
      dstIova,
      bytes: copy.bytesDone,
      ok: copy.ok,
      verified,
      checksumVerified: sum?.ok === true && sum.crc32 === crc32(data),
      crc32: sum?.crc32 ?? 0,
      error: copy.error,
    };
  } finally {
    rt.allocator.free(src);
    rt.allocator.free(dst);
  }
}

async function provokeFault(
  rt: GuestRuntime,
  dma: DmaEngineDriver,
  space: DmaSpace,
  context: number | null,
): Promise<DemoFault> {
  const iova = space.unmappedIova(context);
  const dst = rt.allocator.alloc(0x1000);
  try {
    const dstIova = space.map(context, dst, 0x1000);
    const outcome = await dma.run({
      op: 'copy',
      src: iova,
      dst: dstIova,
      length: 0x1000,
      pasid: context ?? undefined,
    });
    const [report] = await space.takeFaultReports();
    return {
      pasid: context,
      iova,
      engineError: outcome.error,
      faultIova: outcome.fault?.iova ?? null,
      report: report ?? null,
    };
  } finally {
    rt.allocator.free(dst);
  }
}

export default async function demo(rt: GuestRuntime): Promise<DemoReport | null> {
  // One driver owns each device: secondary vCPUs have no work in the demo and stop at once.
  if (rt.cpu !== 0) return null;
  const args = rt.args as DemoArgs;
  const [dma] = DmaEngineDriver.probe(rt);
  if (dma === undefined) throw new Error('the device tree has no DMA engine');
  // The virtio-iommu driver and the vendors' table code load only when there is an IOMMU.
  const space =
    args.iommu === 'none'
      ? identitySpace(rt)
      : await (await import('./iommu-space.js')).iommuSpace(rt, args, dma.endpoint);
  try {
    for (const step of space.setup) rt.log(step);
    const transfers: DemoTransfer[] = [];
    const total = space.contexts.length;
    // Progress on the host's stderr: a run with many PASIDs (or large transfers) takes a while.
    for (const context of space.contexts) {
      const t = await transfer(rt, dma, space, context, args.transferBytes);
      transfers.push(t);
      const who = context === null ? 'DMA without PASID' : `DMA for PASID ${context}`;
      const how = !t.ok
        ? `failed (${t.error})`
        : t.verified && t.checksumVerified
          ? 'verified'
          : 'WRONG DATA';
      rt.log(`[${transfers.length}/${total}] ${who}: ${t.bytes} bytes, ${how}`);
    }
    const fault = await provokeFault(rt, dma, space, space.contexts[0] ?? null);
    rt.log(
      `deliberate fault: engine ${fault.engineError}, report ${fault.report ? fault.report.reason : 'none'}`,
    );
    return {
      iommu: args.iommu,
      nested: args.nested.kind,
      endpoint: dma.endpoint,
      setup: space.setup,
      transfers,
      fault,
    };
  } finally {
    // `vmm explain` walks the tables after the run, so it asks to keep them attached.
    if (!args.keepAttached) space.close();
  }
}
