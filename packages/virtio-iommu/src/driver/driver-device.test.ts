/** The driver against the real device, through the package's harness (real virtqueues, virtio-mmio). */
import { isVmmError, type MmioAccessor, VirtioMmioReg } from '@vmmkit/core';
import { describe, expect, it } from 'vitest';
import { FaultFlag, FaultReason, Status } from '../protocol/constants.js';
import { createVirtioIommuHarness, type VirtioIommuHarnessOptions } from '../testing/index.js';
import { VirtioIommuDriver } from './driver.js';
import type { IommuFault } from './fault-events.js';
import { VirtioIommuRequestError } from './request-error.js';

const RAM = 0x4000_0000;
const MSI = { start: 0x0800_0000n, end: 0x080f_ffffn, subtype: 'msi' as const };
const HOLE = { start: 0x4010_0000n, end: 0x4010_ffffn, subtype: 'reserved' as const };

function setup(options: VirtioIommuHarnessOptions = {}) {
  const harness = createVirtioIommuHarness({
    endpoints: [{ id: 8, reservedRegions: [HOLE, MSI] }, { id: 9 }, { id: 10 }],
    memorySize: 4 << 20,
    ...options,
  });
  const { mmio, base, memory, allocator } = harness.guest;
  // Counts the request-queue notifications the driver sends.
  let requestKicks = 0;
  const counting: MmioAccessor = {
    read8: (gpa) => mmio.read8(gpa),
    read16: (gpa) => mmio.read16(gpa),
    read32: (gpa) => mmio.read32(gpa),
    write8: (gpa, v) => mmio.write8(gpa, v),
    write16: (gpa, v) => mmio.write16(gpa, v),
    write32: (gpa, v) => {
      if (gpa === base + VirtioMmioReg.QUEUE_NOTIFY && v === 0) requestKicks++;
      mmio.write32(gpa, v);
    },
  };
  const driver = new VirtioIommuDriver({
    mmio: counting,
    base,
    memory,
    allocator,
    requestQueueSize: 128,
    eventQueueSize: 16,
  });
  const faults: IommuFault[] = [];
  driver.on('fault', (f) => faults.push(f));
  const translate = (endpoint: number, iova: bigint, access: 'read' | 'write' = 'read') => {
    const r = harness.translate({ endpoint, iova, access });
    return r.ok ? r.address : null;
  };
  return { harness, driver, faults, translate, kicks: () => requestKicks };
}

function errorOf(fn: () => unknown): VirtioIommuRequestError {
  try {
    fn();
  } catch (error) {
    if (error instanceof VirtioIommuRequestError) return error;
    throw error;
  }
  throw new Error('expected a refused request');
}

describe('driver ↔ device', () => {
  it('negotiates every feature the device offers and reads its configuration', () => {
    const { driver } = setup({
      inputRange: { start: 0n, end: (1n << 48n) - 1n },
      domainRange: { start: 1, end: 1000 },
    });
    expect(driver.features).toEqual({
      inputRange: true,
      domainRange: true,
      mapUnmap: true,
      probe: true,
      mmio: true,
      bypassConfig: true,
      attachTable: true,
    });
    expect(driver.config).toMatchObject({
      granule: 0x1000n,
      inputRange: { start: 0n, end: (1n << 48n) - 1n },
      domainRange: { start: 1, end: 1000 },
      probeSize: 512,
      bypass: true,
    });
  });

  it('probes reserved regions sorted, and refuses an unknown endpoint with ENOENT', () => {
    const { driver } = setup();
    expect(driver.probeEndpoint(8).probe.reservedRegions).toEqual([
      { start: MSI.start, end: MSI.end, subtype: 'msi', rawSubtype: 1 },
      { start: HOLE.start, end: HOLE.end, subtype: 'reserved', rawSubtype: 0 },
    ]);
    const e = errorOf(() => driver.probeEndpoint(444));
    expect(e.code).toBe('ENOENT');
    expect(e.request).toMatchObject({ type: 'PROBE', fields: { endpoint: 444 } });
  });

  it('maps a batch with one notification, translates through it, unmaps, and reports the fault', () => {
    const { driver, faults, translate, kicks } = setup();
    const domain = driver.createDomain();
    driver.attach(9, domain);
    const before = kicks();
    const batch = driver.batch();
    for (let i = 0; i < 64; i++)
      batch.map(domain, 0x10_0000 + i * 0x1000, RAM + 0x20_0000 + i * 0x1000, 0x1000, 3);
    expect(batch.submit().ok).toBe(true);
    expect(kicks() - before).toBe(1);
    expect(translate(9, 0x10_0000n + 5n * 0x1000n + 0x123n)).toBe(
      BigInt(RAM + 0x20_0000 + 5 * 0x1000 + 0x123),
    );
    const unmaps = driver.batch();
    for (let i = 0; i < 64; i++) unmaps.unmap(domain, 0x10_0000 + i * 0x1000, 0x1000);
    expect(unmaps.submit().ok).toBe(true);
    expect(translate(9, 0x10_0000n + 0x10n, 'write')).toBeNull();
    expect(driver.handleInterrupt()).toBe(1);
    expect(faults).toEqual([
      expect.objectContaining({ reason: 'mapping', endpoint: 9, write: true, address: 0x10_0010n }),
    ]);
    expect(faults[0]!.flags & FaultFlag.ADDRESS).not.toBe(0);
  });

  it('maps the last page of the 64-bit space exactly', () => {
    const { driver, translate } = setup();
    const domain = driver.createDomain();
    driver.attach(9, domain);
    driver.map(domain, 0xffff_ffff_ffff_f000n, RAM + 0x3000, 0x1000, { read: true });
    expect(translate(9, 0xffff_ffff_ffff_fff8n)).toBe(BigInt(RAM + 0x3ff8));
    expect(translate(9, 0xffff_ffff_ffff_efffn)).toBeNull();
  });

  it('turns the device statuses into typed errors naming the request', () => {
    const { driver } = setup();
    const domain = driver.createDomain();
    driver.attach(9, domain);
    driver.map(domain, 0x1_0000, RAM, 0x2000, { read: true });
    const overlap = errorOf(() => driver.map(domain, 0x1_1000, RAM, 0x1000, { read: true }));
    expect([overlap.code, overlap.status, overlap.request.type]).toEqual(['EINVAL', Status.INVAL, 'MAP']);
    const split = errorOf(() => driver.unmap(domain, 0x1_0000, 0x1000));
    expect([split.code, split.status]).toEqual(['ERANGE', Status.RANGE]);
    const reserved = errorOf(() => {
      const d = driver.createDomain();
      driver.attach(8, d);
      driver.map(d, HOLE.start, RAM, 0x1000, { read: true });
    });
    expect(reserved.request.fields).toMatchObject({ virtStart: HOLE.start });
    const batch = driver.batch().map(domain, 0x9000, RAM, 0x1000, 1).map(domain, 0x9000, RAM, 0x1000, 1);
    const result = batch.submit();
    expect(result.failures.map((f) => f.request.index)).toEqual([1]);
  });

  it('knows that a domain dies with its last endpoint (an endpoint moved away)', () => {
    const { driver, translate } = setup();
    const first = driver.createDomain();
    const second = driver.createDomain();
    driver.attach(9, first);
    driver.map(first, 0x4000, RAM + 0x4000, 0x1000, { read: true });
    driver.attach(9, second);
    expect(driver.domainOf(9)).toBe(second);
    expect(driver.domainInfo(first).endpoints).toEqual([]);
    expect(translate(9, 0x4000n)).toBeNull();
    expect(errorOf(() => driver.map(first, 0x4000, RAM, 0x1000, { read: true })).code).toBe('ENOENT');
    driver.detach(9);
    driver.destroyDomain(first);
    driver.destroyDomain(second);
  });

  it('with keepMappings, replays the mappings when a domain that lost its last endpoint is attached again', () => {
    const harness = createVirtioIommuHarness({
      endpoints: [{ id: 9 }, { id: 10 }],
      bypass: false,
      memorySize: 4 << 20,
    });
    const { mmio, base, memory, allocator } = harness.guest;
    const driver = new VirtioIommuDriver({ mmio, base, memory, allocator, keepMappings: true });
    const dma = (endpoint: number, iova: bigint) => {
      const r = harness.translate({ endpoint, iova, access: 'read' });
      return r.ok ? r.address : null;
    };
    const domain = driver.createDomain();
    driver.attach(9, domain);
    driver
      .batch()
      .map(domain, 0x1000, RAM + 0x1000, 0x1000, 1)
      .map(domain, 0x2000, RAM + 0x5000, 0x2000, 3)
      .map(domain, 0xffff_ffff_ffff_f000n, RAM + 0x9000, 0x1000, 1)
      .submit()
      .throwIfFailed();
    driver.unmap(domain, 0x1000, 0x1000);
    // Refused (it would split a mapping): nothing changes, on the device or in the driver.
    expect(() => driver.unmap(domain, 0x2000, 0x1000)).toThrow(expect.objectContaining({ code: 'ERANGE' }));
    expect(driver.keptMappings(domain).map((m) => m.start)).toEqual([0x2000n, 0xffff_ffff_ffff_f000n]);
    driver.detach(9);
    expect(dma(9, 0x2000n)).toBeNull();
    // The endpoint comes back through another one's move: 10 attaches first, the domain is recreated.
    driver.attach(10, domain);
    expect(dma(10, 0x3008n)).toBe(BigInt(RAM + 0x6008));
    expect(dma(10, 0xffff_ffff_ffff_fff0n)).toBe(BigInt(RAM + 0x9ff0));
    expect(dma(10, 0x1000n)).toBeNull();
    // A second endpoint joins a live domain: nothing is replayed (the device would refuse overlaps).
    driver.attach(9, domain);
    expect(dma(9, 0x2000n)).toBe(BigInt(RAM + 0x5000));
  });

  it('makes identity domains with ATTACH_F_BYPASS when BYPASS_CONFIG is negotiated', () => {
    const { driver, translate } = setup({ bypass: false });
    expect(translate(10, 0x1234n)).toBeNull();
    const identity = driver.createDomain('identity');
    driver.attach(10, identity);
    expect(translate(10, 0x1234n)).toBe(0x1234n);
    // Bypass covers everything, RAM or not: no MAP was sent.
    expect(translate(10, 0xdead_0000n)).toBe(0xdead_0000n);
  });

  it('emulates identity domains with 1:1 maps of RAM minus reserved regions without BYPASS_CONFIG', () => {
    const { driver, translate } = setup({
      features: { bypassConfig: false },
      bypass: false,
    });
    expect(driver.features.bypassConfig).toBe(false);
    expect(() => driver.createDomain('bypass')).toThrow(expect.objectContaining({ code: 'ENOSYS' }));
    const identity = driver.createDomain('identity');
    driver.attach(8, identity);
    expect(translate(8, BigInt(RAM + 0x1234))).toBe(BigInt(RAM + 0x1234));
    expect(translate(8, BigInt(RAM + (4 << 20) - 8), 'write')).toBe(BigInt(RAM + (4 << 20) - 8));
    // The reserved hole is not mapped, and neither is anything outside RAM.
    expect(translate(8, HOLE.start + 0x10n)).toBeNull();
    expect(translate(8, 0x1000n)).toBeNull();
    // A second endpoint shares the maps.
    driver.attach(9, identity);
    expect(translate(9, BigInt(RAM + 0x2000))).toBe(BigInt(RAM + 0x2000));
  });

  it('turns global bypass off and on', () => {
    const { driver, translate, faults } = setup();
    expect(translate(10, 0x5000n)).toBe(0x5000n);
    driver.setBypass(false);
    expect(translate(10, 0x5000n)).toBeNull();
    driver.processEvents();
    expect(faults.at(-1)).toMatchObject({ endpoint: 10, reason: expect.any(String) });
    expect([FaultReason.UNKNOWN, FaultReason.DOMAIN]).toContain(faults.at(-1)!.rawReason);
    driver.setBypass(true);
    expect(translate(10, 0x5000n)).toBe(0x5000n);
  });

  it('rejects use of a domain it did not create', () => {
    const { driver } = setup();
    expect(() => driver.attach(9, 77)).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    expect(isVmmError(new VirtioIommuRequestError(Status.INVAL, { type: 'MAP', index: 0, fields: {} }))).toBe(
      true,
    );
  });

  it('works as a worker-mode driver: notifications reach the device only while the driver waits', () => {
    const harness = createVirtioIommuHarness({ endpoints: [{ id: 9 }], bypass: false, memorySize: 4 << 20 });
    const { mmio, base, memory, allocator } = harness.guest;
    // A device on another thread: a kick is only seen once the vCPU blocks.
    const deferred: number[] = [];
    const lagging: MmioAccessor = {
      read8: (gpa) => mmio.read8(gpa),
      read16: (gpa) => mmio.read16(gpa),
      read32: (gpa) => mmio.read32(gpa),
      write8: (gpa, v) => mmio.write8(gpa, v),
      write16: (gpa, v) => mmio.write16(gpa, v),
      write32: (gpa, v) => {
        if (gpa === base + VirtioMmioReg.QUEUE_NOTIFY && driverReady) deferred.push(v);
        else mmio.write32(gpa, v);
      },
    };
    let driverReady = false;
    let waits = 0;
    const driver = new VirtioIommuDriver({
      mmio: lagging,
      base,
      memory,
      allocator,
      wait: () => {
        waits++;
        for (const q of deferred.splice(0)) mmio.write32(base + VirtioMmioReg.QUEUE_NOTIFY, q);
      },
    });
    driverReady = true;
    const faults: IommuFault[] = [];
    driver.on('fault', (f) => faults.push(f));
    const domain = driver.createDomain();
    driver.attach(9, domain);
    const batch = driver.batch();
    for (let i = 0; i < 100; i++) batch.map(domain, i * 0x1000, RAM + i * 0x1000, 0x1000, 1);
    expect(batch.submit().ok).toBe(true);
    expect(waits).toBeGreaterThan(0);
    expect(harness.translate({ endpoint: 9, iova: 0x63_010n, access: 'read' })).toMatchObject({
      ok: true,
      address: BigInt(RAM + 0x63_010),
    });
    // A fault raised while no request waits: the interrupt handler reads it.
    expect(harness.translate({ endpoint: 9, iova: 0x100_0000n, access: 'write' }).ok).toBe(false);
    expect(driver.handleInterrupt()).toBe(1);
    expect(faults).toEqual([expect.objectContaining({ reason: 'mapping', endpoint: 9, write: true })]);
    expect(harness.transport.interruptStatus).toBe(0);
  });
});
