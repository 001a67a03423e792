import { type IoPgtableRegistry, type PasidTableLibrary, TOKENS } from '@vmmkit/core';
import type { VirtioIommuDevice } from '@vmmkit/virtio-iommu';
import type { ContainerModule } from 'inversify';
import { type DmaEngine, dmaEngine } from '../dma/dma-engine.js';
import { type VirtioIommuSpec, virtioIommu } from '../virtio/virtio-iommu-device.js';
import { createVm, type Vm } from '../vm.js';

/** Endpoint ID of the demo's DMA engine behind the IOMMU. */
export const DEMO_DMA_ENDPOINT = 0x10;

export interface DemoMachineOptions {
  mem: number;
  cpus: number;
  mode: 'worker' | 'inline';
  iommu: 'virtio' | 'none';
  plugins: readonly ContainerModule[];
  onLog?: (cpu: number, message: string) => void;
}

export interface DemoMachine {
  vm: Vm;
  dma: () => DmaEngine;
  /** The virtio-iommu, when the machine has one. */
  iommu: (() => VirtioIommuDevice) | null;
  /** Its device spec (for `explain`), when the machine has one. */
  iommuSpec: VirtioIommuSpec | null;
  library: PasidTableLibrary;
  pgtables: IoPgtableRegistry;
}

/**
 * The demo machine (`vmm run`): RAM at 2 GiB, a virtio-iommu (unless `--iommu none`) and a
 * PASID-capable DMA engine behind it, with the table formats of every loaded plugin.
 */
export async function buildDemoMachine(options: DemoMachineOptions): Promise<DemoMachine> {
  const engine = dmaEngine({ name: 'dma0', endpoint: DEMO_DMA_ENDPOINT, pasidBits: 20 });
  const iommu =
    options.iommu === 'virtio'
      ? virtioIommu({
          name: 'viommu',
          endpoints: [{ id: DEMO_DMA_ENDPOINT }],
          // Unattached endpoints fault: the demo's DMA only works once the guest attached it.
          bypass: false,
        })
      : null;
  const vm = await createVm({
    memory: options.mem,
    cpus: options.cpus,
    mode: options.mode,
    plugins: options.plugins,
    devices: iommu ? [iommu, engine] : [engine],
    ...(options.onLog ? { onLog: options.onLog } : {}),
  });
  return {
    vm,
    dma: () => engine.engine(),
    iommu: iommu ? () => iommu.device() : null,
    iommuSpec: iommu,
    library: vm.container.get<PasidTableLibrary>(TOKENS.PasidTableLibrary),
    pgtables: vm.container.get<IoPgtableRegistry>(TOKENS.IoPgtableRegistry),
  };
}
