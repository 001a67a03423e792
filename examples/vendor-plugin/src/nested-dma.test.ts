/**
 * The plugin in a real nested setup: the guest driver attaches a `virt` table (format 3) over
 * the virtio-iommu request queue, and DMA by the endpoint is translated by the plugin's walker.
 * Nothing under packages/ knows the format.
 */
import { createContainer, IommuProt } from '@vmmkit/core';
import { VirtioIommuDriver } from '@vmmkit/virtio-iommu';
import { createVirtioIommuHarness } from '@vmmkit/virtio-iommu/testing';
import { describe, expect, it } from 'vitest';
import { virtPlugin } from './plugin.js';
import { VIRT_TABLE_FORMAT } from './virt-format.js';

const RAM = 0x4000_0000;
const ENDPOINT = 5;

function setup() {
  const harness = createVirtioIommuHarness({
    endpoints: [{ id: ENDPOINT }],
    plugins: [virtPlugin],
    bypass: false,
    memorySize: 8 << 20,
  });
  const { mmio, base, memory, allocator } = harness.guest;
  const driver = new VirtioIommuDriver({
    mmio,
    base,
    memory,
    allocator,
    container: createContainer([virtPlugin]),
  });
  const dma = (iova: number, access: 'read' | 'write' = 'read') => {
    const r = harness.translate({ endpoint: ENDPOINT, iova: BigInt(iova), access });
    return r.ok ? Number(r.address) : null;
  };
  return { harness, driver, dma };
}

describe('nested DMA through the virt plugin', () => {
  it('PROBE offers format 3 because the plugin registered it', () => {
    const { driver } = setup();
    expect(driver.probeEndpoint(ENDPOINT).formats.map((f) => f.format)).toEqual([VIRT_TABLE_FORMAT]);
  });

  it('attaches a virt table and translates DMA through it, pages and blocks', () => {
    const { driver, dma } = setup();
    const domain = driver.attachPageTable(ENDPOINT, { pgtableFormat: 'virt' });
    domain.map(0x10_0000, RAM + 0x40_0000, 0x2000, IommuProt.READ | IommuProt.WRITE);
    domain.map(0x4000_0000, RAM, 0x20_0000, IommuProt.READ);
    expect(dma(0x10_0010, 'write')).toBe(RAM + 0x40_0010);
    expect(dma(0x10_1ff8)).toBe(RAM + 0x40_1ff8);
    expect(dma(0x401f_f000)).toBe(RAM + 0x1f_f000);
    expect(dma(0x4000_0000, 'write')).toBeNull();
    expect(dma(0x10_2000)).toBeNull();
  });

  it('an unmap reaches the device as an invalidation; an edit without one stays invisible', () => {
    const { driver, dma } = setup();
    const faults: { address?: bigint; endpoint: number }[] = [];
    driver.on('fault', (f) => faults.push(f));
    const domain = driver.attachPageTable(ENDPOINT, { pgtableFormat: 'virt' });
    domain.map(0x20_0000, RAM + 0x10_0000, 0x1000, IommuProt.READ);
    expect(dma(0x20_0000)).toBe(RAM + 0x10_0000);
    // Edit the table behind the driver's back: the device keeps its cached translation.
    domain.pgtable.unmap(0x20_0000, 0x1000);
    domain.pgtable.map(0x20_0000, RAM + 0x30_0000, 0x1000, IommuProt.READ);
    expect(dma(0x20_0000)).toBe(RAM + 0x10_0000);
    domain.invalidate(0x20_0000, 0x1000);
    expect(dma(0x20_0000)).toBe(RAM + 0x30_0000);
    domain.unmap(0x20_0000, 0x1000);
    expect(dma(0x20_0000)).toBeNull();
    // The fault report arrives on the event queue the driver posted.
    driver.handleInterrupt();
    expect(faults).toEqual([expect.objectContaining({ endpoint: ENDPOINT, address: 0x20_0000n })]);
  });
});
