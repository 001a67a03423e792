import { NestedFaultReason } from '@vmmkit/core';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeIommu } from '../testing/fake-iommu.js';
import { createVm, type Vm } from '../vm.js';
import { dmaEngine } from './dma-engine.js';

const MiB = 1024 * 1024;
const RAM = 0x8000_0000;
let vm: Vm | null = null;
afterEach(async () => {
  await vm?.destroy();
  vm = null;
});

describe.each(['inline', 'worker'] as const)('a guest driving the DMA engine (%s)', (mode) => {
  it('copies and verifies under one PASID and gets a fault report under another', async () => {
    const iommu = new FakeIommu();
    // PASID 1 sees all of RAM at IOVA = GPA; PASID 2 has nothing mapped.
    iommu.map(42, 1, RAM, RAM, 4 * MiB);
    const engine = dmaEngine({ endpoint: 42, translator: iommu });
    vm = await createVm({ memory: 4 * MiB, mode, devices: [engine] });
    type GuestReport = {
      src: number;
      fault: { fault: { iova: number } };
    };
    const [result] = (await vm.run({
      module: new URL('../testing/guests/dma.ts', import.meta.url),
      args: { pasid: 1, badPasid: 2, length: 3 * 4096 + 123 },
    })) as GuestReport[];
    expect(result).toMatchObject({
      endpoint: 42,
      pasidBits: 20,
      copy: { ok: true, error: 'none', bytesDone: 3 * 4096 + 123 },
      same: true,
      crcMatches: true,
      fault: {
        ok: false,
        error: 'translation',
        bytesDone: 0,
        fault: { access: 'read', reason: NestedFaultReason.MAPPING },
      },
    });
    expect(result!.fault.fault.iova).toBe(result!.src);
    expect(iommu.faults).toEqual([expect.objectContaining({ endpoint: 42, pasid: 2, iova: result!.src })]);
    expect(engine.engine().stats).toEqual({ transfers: 3, bytes: 2 * (3 * 4096 + 123), errors: 1 });
  });
});
