import type { GuestRuntime } from '../vcpu/guest-runtime.js';
import type { DemoFault } from './report.js';

/**
 * How the demo guest makes its buffers reachable by the DMA engine: one or more DMA contexts
 * (PASIDs, or a single context without PASID) and a way to map guest memory into each.
 */
export interface DmaSpace {
  /** The contexts to run a DMA in: PASIDs, or `[null]` for transactions without PASID. */
  readonly contexts: readonly (number | null)[];
  /** What was set up, for the summary. */
  readonly setup: string[];
  /** Makes `[gpa, gpa + length)` reachable (read and write) in `context`; returns its IOVA. */
  map(context: number | null, gpa: number, length: number): number;
  /** An IOVA in `context` that nothing maps: the deliberate fault goes there. */
  unmappedIova(context: number | null): number;
  /** Waits briefly for and returns the fault reports the IOMMU sent since the last call. */
  takeFaultReports(): Promise<NonNullable<DemoFault['report']>[]>;
  /** Detaches and frees what the space set up. */
  close(): void;
}

/** No IOMMU (`--iommu none`): IOVA = guest-physical address, no PASIDs, no fault reports. */
export function identitySpace(rt: GuestRuntime): DmaSpace {
  const lastRam = rt.memory.bankList.filter((b) => b.kind === 'ram').at(-1)!;
  return {
    contexts: [null],
    setup: ['no IOMMU: the DMA engine uses guest-physical addresses'],
    map: (_context, gpa) => gpa,
    // Past the end of the highest RAM bank nothing answers: the engine reports a bus error.
    unmappedIova: () => lastRam.end + 0x10_0000,
    takeFaultReports: async () => [],
    close: () => {},
  };
}
