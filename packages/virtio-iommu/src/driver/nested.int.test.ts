/**
 * The driver's nested attach with the `arm` vendor (SMMUv3 CD tables, arm-lpae-s1 page tables)
 * against the real device and the smmuv3 nested backends: DMA through each PASID, mapping
 * changes seen only after INVALIDATE, faults with their PASID.
 */
import { createContainer, IommuProt } from '@vmmkit/core';
import { smmuv3Plugin } from '@vmmkit/smmuv3';
import { describe, expect, it } from 'vitest';
import { createVirtioIommuHarness } from '../testing/index.js';
import { VirtioIommuDriver } from './driver.js';
import type { IommuFault } from './fault-events.js';

const RAM = 0x4000_0000;
const RW = IommuProt.READ | IommuProt.WRITE;
const IOVA = 0x10_0000;

function setup() {
  const harness = createVirtioIommuHarness({
    endpoints: [{ id: 3 }, { id: 4 }],
    plugins: [smmuv3Plugin],
    bypass: false,
    memorySize: 8 << 20,
  });
  const { mmio, base, memory, allocator } = harness.guest;
  const driver = new VirtioIommuDriver({
    mmio,
    base,
    memory,
    allocator,
    container: createContainer([smmuv3Plugin]),
  });
  const faults: IommuFault[] = [];
  driver.on('fault', (f) => faults.push(f));
  const dma = (endpoint: number, iova: number, pasid?: number, access: 'read' | 'write' = 'read') => {
    const r = harness.translate({ endpoint, iova: BigInt(iova), access, pasid });
    return r.ok ? Number(r.address) : null;
  };
  return { harness, driver, faults, dma };
}

/** A distinct 64 KiB buffer of guest RAM per PASID. */
const bufferOf = (pasid: number) => RAM + 0x20_0000 + pasid * 0x1_0000;

describe('nested PASID table with the arm vendor', () => {
  it('PROBE describes the SMMUv3 PASID table and the LPAE page table', () => {
    const { driver } = setup();
    const kinds = driver.probeEndpoint(3).formats.map((f) => [f.kind, f.format]);
    expect(kinds).toEqual(
      expect.arrayContaining([
        ['pasid-table', 2],
        ['page-table', 1],
      ]),
    );
  });

  it('attaches a table with several PASIDs and DMA goes through each one', () => {
    const { driver, dma } = setup();
    const pasids = [1, 2, 7, 300];
    const nested = driver.attachPasidTable(3, {
      pasidTableFormat: 'arm-smmu-v3',
      pgtableFormat: 'arm-lpae-s1',
      pasids,
    });
    for (const pasid of pasids) nested.map(pasid, IOVA, bufferOf(pasid), 0x2000, RW);
    for (const pasid of pasids) {
      expect(dma(3, IOVA + 0x123, pasid)).toBe(bufferOf(pasid) + 0x123);
      expect(dma(3, IOVA + 0x1ff8, pasid, 'write')).toBe(bufferOf(pasid) + 0x1ff8);
    }
    // A PASID without a context descriptor, and DMA without PASID (s1dss terminate), fault.
    expect(dma(3, IOVA, 9)).toBeNull();
    expect(dma(3, IOVA)).toBeNull();
  });

  it('a changed mapping is seen after INVALIDATE; without it the stale one stays visible', () => {
    const { driver, dma } = setup();
    const nested = driver.attachPasidTable(3, {
      pasidTableFormat: 'arm',
      pgtableFormat: 'arm-lpae-s1',
      pasids: [5],
    });
    nested.map(5, IOVA, bufferOf(1), 0x1000, RW);
    expect(dma(3, IOVA, 5)).toBe(bufferOf(1));
    // Edit the table directly: the TLB maintenance it asks for is queued, not sent.
    const table = nested.pgtable(5);
    const gather = { start: Number.POSITIVE_INFINITY, end: 0, pgsize: 0 };
    expect(table.unmap(IOVA, 0x1000, gather)).toBe(0x1000);
    table.map(IOVA, bufferOf(2), 0x1000, RW);
    expect(table.iovaToPhys(IOVA)).toBe(bufferOf(2));
    expect(dma(3, IOVA, 5)).toBe(bufferOf(1));
    // Sending what was queued is not enough: the leaf page is still only in our gather.
    nested.flush();
    expect(dma(3, IOVA, 5)).toBe(bufferOf(1));
    nested.invalidate(5, IOVA, 0x1000);
    expect(dma(3, IOVA, 5)).toBe(bufferOf(2));
  });

  it('unmap sends the invalidation: the old page faults, and the fault names the PASID', () => {
    const { driver, dma, faults } = setup();
    const nested = driver.attachPasidTable(3, {
      pasidTableFormat: 'arm',
      pgtableFormat: 'arm-lpae-s1',
      pasids: [4],
    });
    nested.map(4, IOVA, bufferOf(4), 0x4000, RW);
    expect(dma(3, IOVA + 0x3000, 4)).toBe(bufferOf(4) + 0x3000);
    expect(nested.unmap(4, IOVA, 0x4000)).toBe(0x4000);
    expect(dma(3, IOVA + 0x3000, 4)).toBeNull();
    driver.handleInterrupt();
    expect(faults.at(-1)).toMatchObject({
      endpoint: 3,
      pasid: 4,
      address: BigInt(IOVA + 0x3000),
      read: true,
    });
  });

  it('a removed PASID stops translating; other PASIDs are untouched', () => {
    const { driver, dma } = setup();
    const nested = driver.attachPasidTable(3, {
      pasidTableFormat: 'arm',
      pgtableFormat: 'arm-lpae-s1',
      pasids: [1, 2],
    });
    nested.map(1, IOVA, bufferOf(1), 0x1000, RW);
    nested.map(2, IOVA, bufferOf(2), 0x1000, RW);
    expect(dma(3, IOVA, 1)).toBe(bufferOf(1));
    nested.removePasid(1);
    expect(dma(3, IOVA, 1)).toBeNull();
    expect(dma(3, IOVA, 2)).toBe(bufferOf(2));
  });

  it('passes vendor capabilities through: a two-level CD table reaches 20-bit PASIDs', () => {
    const { driver, dma } = setup();
    const high = 0xf_1234;
    const nested = driver.attachPasidTable(3, {
      pasidTableFormat: 'arm-smmu-v3',
      pgtableFormat: 'arm-lpae-s1',
      deviceFeatures: { cd2l: true },
      pasids: [1, high],
    });
    nested.map(high, IOVA, bufferOf(8), 0x1000, RW);
    expect(dma(3, IOVA + 4, high)).toBe(bufferOf(8) + 4);
    // Without the capability the vendor builds a linear table of 2^10 entries and refuses the PASID.
    const linear = driver.attachPasidTable(4, {
      pasidTableFormat: 'arm-smmu-v3',
      pgtableFormat: 'arm-lpae-s1',
    });
    expect(() => linear.addPasid(high)).toThrow(expect.objectContaining({ code: 'ERANGE' }));
  });

  it('two endpoints share one table', () => {
    const { driver, dma } = setup();
    const nested = driver.attachPasidTable(3, {
      pasidTableFormat: 'arm',
      pgtableFormat: 'arm-lpae-s1',
      pasids: [6],
    });
    nested.map(6, IOVA, bufferOf(6), 0x1000, RW);
    nested.attach(4);
    expect(nested.endpoints).toEqual([3, 4]);
    expect(dma(4, IOVA + 8, 6)).toBe(bufferOf(6) + 8);
    nested.detach(3);
    expect(dma(3, IOVA, 6)).toBeNull();
    expect(dma(4, IOVA, 6)).toBe(bufferOf(6));
  });
});

describe('nested single page table with the arm vendor', () => {
  it('attaches an arm-lpae-s1 table (format 1) and translates DMA without PASID', () => {
    const { driver, dma } = setup();
    const nested = driver.attachPageTable(4, { pgtableFormat: 'arm-lpae-s1' });
    nested.map(IOVA, bufferOf(3), 0x20_0000, RW);
    expect(dma(4, IOVA + 0x1_2345)).toBe(bufferOf(3) + 0x1_2345);
    nested.unmap(IOVA, 0x20_0000);
    expect(dma(4, IOVA + 0x1_2345)).toBeNull();
  });
});
