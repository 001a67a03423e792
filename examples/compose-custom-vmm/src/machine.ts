/**
 * The machine, composed from the public packages only: two RAM banks, a virtio-iommu that
 * accepts the guest's own SMMUv3 stage-1 tables, a PASID-capable DMA engine behind it, and the
 * example's mailbox. `vmm run` builds its demo machine the same way.
 */
import { smmuv3Plugin } from '@vmmkit/smmuv3';
import { createVm, dmaEngine, type VcpuMode, virtioIommu } from '@vmmkit/vmm';
import { mailbox } from './mailbox.js';

/** Low RAM holds the guest's heap (rings, tables, source buffers); high RAM the DMA destinations. */
export const LOW_RAM = { gpa: 0x8000_0000, size: 16 * 1024 * 1024 };
export const HIGH_RAM = { gpa: 0x1_0000_0000, size: 8 * 1024 * 1024 };
/** The DMA engine's endpoint ID behind the IOMMU. */
export const DMA_ENDPOINT = 7;

export async function composeMachine(mode: VcpuMode = 'worker') {
  const iommu = virtioIommu({ name: 'viommu', endpoints: [{ id: DMA_ENDPOINT }], bypass: false });
  const dma = dmaEngine({ name: 'dma0', endpoint: DMA_ENDPOINT, pasidBits: 8 });
  // The host answers every message with its sequence number, so the guest can check the round trip.
  const box = mailbox({ name: 'mailbox0', onMessage: (_text, index) => index });
  const vm = await createVm({
    memory: { banks: [LOW_RAM, HIGH_RAM] },
    mode,
    // The Arm vendor plugin: the host side of `--nested arm` (the guest loads it for its side).
    plugins: [smmuv3Plugin],
    devices: [iommu, dma, box],
  });
  return {
    vm,
    iommu,
    dma,
    mailbox: box,
    /** Runs the example's guest program on the vCPU; resolves with what it reports. */
    run: async () => {
      const [report] = await vm.run({ module: new URL('./guest.ts', import.meta.url) });
      return report as GuestReport;
    },
  };
}

/** What the guest program returns (plain data: it crosses from a worker vCPU). */
export interface GuestReport {
  transfers: { pasid: number; src: number; dst: number; bytes: number; verified: boolean; crc32: number }[];
  isolation: {
    error: string;
    faultIova: number | null;
    report: { endpoint: number; pasid: number | null } | null;
  };
  replies: number[];
}
