/**
 * The guest program: it sees the machine only through its device tree, MMIO and RAM. It says
 * hello through the mailbox, attaches a PASID table (PASIDs 1 and 2) to the virtio-iommu, copies
 * a buffer from low to high RAM under each PASID at the *same* IOVAs, verifies the bytes and the
 * engine's CRC-32, and checks that PASID 2 cannot reach what only PASID 1 mapped.
 */
import { crc32 } from 'node:zlib';
import { BitmapPageAllocator, createContainer, IommuProt } from '@vmmkit/core';
import { smmuv3Plugin } from '@vmmkit/smmuv3';
import { type IommuFault, VIRTIO_IOMMU_DEVICE_ID, VirtioIommuDriver } from '@vmmkit/virtio-iommu';
import { DmaEngineDriver, type GuestRuntime } from '@vmmkit/vmm';
import type { GuestReport } from './machine.js';
import { MAILBOX_COMPATIBLE, MAILBOX_MAGIC, MailboxReg } from './mailbox.js';

const LENGTH = 5 * 4096 + 17;
const SRC_IOVA = 0x10_0000;
const DST_IOVA = 0x20_0000;
const ONLY_PASID_1 = 0x30_0000;

export default async function guest(rt: GuestRuntime): Promise<GuestReport> {
  const [box] = rt.findDevices(MAILBOX_COMPATIBLE);
  if (box === undefined || rt.mmio.read32(box.base + MailboxReg.MAGIC) !== MAILBOX_MAGIC) {
    throw new Error('no mailbox in the device tree');
  }
  const replies: number[] = [];
  const say = async (text: string) => {
    for (const byte of new TextEncoder().encode(text)) rt.mmio.write32(box.base + MailboxReg.TX, byte);
    rt.mmio.write32(box.base + MailboxReg.SEND, 1);
    if (!(await rt.waitForInterrupt(box.irq!, 5000))) throw new Error('the host did not answer');
    replies.push(rt.mmio.read32(box.base + MailboxReg.REPLY));
  };
  await say(`hello from vCPU ${rt.cpu} (${rt.mode})`);

  const [viommu] = rt.findVirtioDevices(VIRTIO_IOMMU_DEVICE_ID);
  const [dma] = DmaEngineDriver.probe(rt);
  if (viommu === undefined || dma === undefined) throw new Error('no virtio-iommu or DMA engine');
  const wait = rt.completionWait(viommu.node.irq!);
  const driver = new VirtioIommuDriver({
    mmio: rt.mmio,
    base: viommu.node.base,
    memory: rt.memory,
    allocator: rt.allocator,
    container: createContainer([smmuv3Plugin]),
    ...(wait ? { wait } : {}),
  });
  const faults: IommuFault[] = [];
  driver.on('fault', (fault) => faults.push(fault));
  const domain = driver.attachPasidTable(dma.endpoint, {
    pasidTableFormat: 'arm',
    pgtableFormat: 'arm-lpae-s1',
    pasids: [1, 2],
  });

  // The vCPU's allocator covers the heap in low RAM; destinations come from the highest RAM bank.
  const high = rt.memory.bankList.filter((b) => b.kind === 'ram').at(-1)!;
  const highPages = new BitmapPageAllocator(rt.memory, { base: high.gpa, size: high.size });
  const size = Math.ceil(LENGTH / 4096) * 4096;
  const transfers: GuestReport['transfers'] = [];
  for (const pasid of [1, 2]) {
    const src = rt.allocator.alloc(size);
    const dst = highPages.alloc(size);
    const data = Uint8Array.from({ length: LENGTH }, (_, i) => (i * pasid + (i >> 9)) & 0xff);
    rt.memory.write(src, data);
    domain.map(pasid, SRC_IOVA, src, size, IommuProt.READ);
    domain.map(pasid, DST_IOVA, dst, size, IommuProt.READ | IommuProt.WRITE);
    const copy = await dma.run({ op: 'copy', src: SRC_IOVA, dst: DST_IOVA, length: LENGTH, pasid });
    const sum = await dma.run({ op: 'crc32', src: DST_IOVA, length: LENGTH, pasid });
    const verified =
      copy.ok && sum.crc32 === crc32(data) && Buffer.compare(rt.memory.read(dst, LENGTH), data) === 0;
    transfers.push({ pasid, src, dst, bytes: copy.bytesDone, verified, crc32: sum.crc32 });
    await say(
      `PASID ${pasid}: ${copy.bytesDone} bytes to 0x${dst.toString(16)}, ${verified ? 'verified' : 'WRONG'}`,
    );
  }

  // Isolation: PASID 1 maps one more page; PASID 2 asking for it faults and the IOMMU reports it.
  domain.map(1, ONLY_PASID_1, rt.allocator.alloc(4096), 4096, IommuProt.READ);
  const stray = await dma.run({ op: 'crc32', src: ONLY_PASID_1, length: 64, pasid: 2 });
  await rt.waitForInterrupt(viommu.node.irq!, 1000);
  driver.handleInterrupt();
  const [report] = faults;
  await say(`PASID 2 reading PASID 1's page: ${stray.error}`);
  return {
    transfers,
    isolation: {
      error: stray.error,
      faultIova: stray.fault?.iova ?? null,
      report: report ? { endpoint: report.endpoint, pasid: report.pasid ?? null } : null,
    },
    replies,
  };
}
