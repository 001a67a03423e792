/**
 * Guest program: attaches an Arm SMMUv3 PASID table with `args.pasids`, maps a source and a
 * destination buffer for each PASID at the same IOVAs (only the PASID tells them apart), copies
 * through the DMA engine under each PASID and verifies the bytes and the engine's CRC-32, then
 * provokes two faults — an unmapped IOVA and a PASID the table does not hold — and collects the
 * fault reports. With `args.crash`, throws after the attach instead (a guest driver bug).
 */
import { crc32 } from 'node:zlib';
import { IommuProt } from '@vmmkit/core';
import type { GuestRuntime } from '../../vcpu/guest-runtime.js';
import { openNestedGuest, pattern } from './nested-common.js';

export const IOVA_SRC = 0x4000_0000;
export const IOVA_DST = 0x4010_0000;
export const IOVA_UNMAPPED = 0x7fff_0000;

interface Args {
  pasids: number[];
  length: number;
  crash?: boolean;
}

function attachFailedInTheGuest(): never {
  throw new TypeError('guest driver bug right after ATTACH_TABLE');
}

export default async function nestedDma(rt: GuestRuntime) {
  const { pasids, length, crash } = rt.args as Args;
  const { driver, dma, takeFaults } = openNestedGuest(rt);
  const domain = driver.attachPasidTable(dma.endpoint, {
    pasidTableFormat: 'arm',
    pgtableFormat: 'arm-lpae-s1',
    pasids,
  });
  if (crash) attachFailedInTheGuest();
  const size = Math.ceil(length / 0x1000) * 0x1000;
  const transfers = [];
  const buffers: Record<number, { src: number; dst: number }> = {};
  for (const pasid of pasids) {
    const src = rt.allocator.alloc(size);
    const dst = rt.allocator.alloc(size);
    buffers[pasid] = { src, dst };
    const data = pattern(length, pasid);
    rt.memory.write(src, data);
    domain.map(pasid, IOVA_SRC, src, size, IommuProt.READ);
    domain.map(pasid, IOVA_DST, dst, size, IommuProt.READ | IommuProt.WRITE);
    const copy = await dma.run({ op: 'copy', src: IOVA_SRC, dst: IOVA_DST, length, pasid });
    const sum = await dma.run({ op: 'crc32', src: IOVA_DST, length, pasid });
    transfers.push({
      pasid,
      copy,
      verified: Buffer.compare(rt.memory.read(dst, length), data) === 0,
      crcVerified: sum.ok && sum.crc32 === crc32(data),
    });
  }
  const first = pasids[0]!;
  const unmapped = await dma.run({ op: 'copy', src: IOVA_UNMAPPED, dst: IOVA_DST, length: 64, pasid: first });
  const unmappedReports = await takeFaults();
  // The source is mapped read-only: writing it is a permission fault.
  const readOnly = await dma.run({ op: 'fill', dst: IOVA_SRC, length: 64, value: 0xee, pasid: first });
  const readOnlyReports = await takeFaults();
  const stranger = Math.max(...pasids) + 1;
  const noContext = await dma.run({ op: 'crc32', src: IOVA_SRC, length: 64, pasid: stranger });
  const noContextReports = await takeFaults();
  return {
    endpoint: dma.endpoint,
    transfers,
    buffers,
    faults: {
      unmapped: { outcome: unmapped, reports: unmappedReports },
      readOnly: { outcome: readOnly, reports: readOnlyReports },
      noContext: { pasid: stranger, outcome: noContext, reports: noContextReports },
    },
  };
}
