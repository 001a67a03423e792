import { featureBit, VirtioFeature } from '@vmmkit/core';
import { describe, expect, it } from 'vitest';
import { ConfigOffset, IommuFeature, MapFlag, RequestType, Status } from '../protocol/constants.js';
import { decodeRequest, type MapRequest } from '../protocol/requests.js';
import { VirtioIommuDriver } from './driver.js';
import { STATUS_NOT_WRITTEN, VirtioIommuRequestError } from './request-error.js';
import { createScriptedDriver, createScriptedIommu, MMIO_BASE } from './testing/scripted-iommu.js';

const setup = createScriptedDriver;

function requestTypes(requests: Uint8Array[]): number[] {
  return requests.map((r) => r[0]!);
}

describe('feature negotiation and configuration', () => {
  it('asks for what Linux asks for plus ATTACH_TABLE, and only gets what was offered', () => {
    const { driver, transport } = setup({
      features: [IommuFeature.MAP_UNMAP, IommuFeature.PROBE, IommuFeature.BYPASS, IommuFeature.ATTACH_TABLE],
    });
    expect(driver.features).toEqual({
      inputRange: false,
      domainRange: false,
      mapUnmap: true,
      probe: true,
      mmio: false,
      bypassConfig: false,
      attachTable: true,
    });
    // Legacy F_BYPASS (bit 3) is offered but Linux does not accept it.
    expect(transport.features & featureBit(IommuFeature.BYPASS)).toBe(0n);
    expect(transport.features & featureBit(VirtioFeature.VERSION_1)).not.toBe(0n);
    expect(driver.hasFeature(VirtioFeature.EVENT_IDX)).toBe(true);
  });

  it('reads every configuration field that its feature makes valid', () => {
    const { driver } = setup({
      pageSizeMask: 0x4020_1000n,
      inputRange: { start: 0x1000n, end: (1n << 48n) - 1n },
      domainRange: { start: 5, end: 9 },
      probeSize: 128,
      bypass: 1,
    });
    expect(driver.config).toEqual({
      pageSizeMask: 0x4020_1000n,
      granule: 0x1000n,
      inputRange: { start: 0x1000n, end: (1n << 48n) - 1n },
      domainRange: { start: 5, end: 9 },
      probeSize: 128,
      bypass: true,
    });
  });

  it('uses the full ranges when INPUT_RANGE and DOMAIN_RANGE are not offered', () => {
    const { driver } = setup({
      features: [IommuFeature.MAP_UNMAP],
      inputRange: { start: 0x1000n, end: 0x2000n },
      domainRange: { start: 3, end: 4 },
    });
    expect(driver.config.inputRange).toEqual({ start: 0n, end: (1n << 64n) - 1n });
    expect(driver.config.domainRange).toEqual({ start: 0, end: 0xffff_ffff });
    expect(driver.config.probeSize).toBe(0);
    expect(driver.config.bypass).toBeUndefined();
  });

  it('refuses a device with neither MAP_UNMAP nor ATTACH_TABLE, and one with a zero page size mask', () => {
    expect(() => setup({ features: [IommuFeature.PROBE] })).toThrow(
      expect.objectContaining({ code: 'ENOSYS' }),
    );
    expect(() => setup({ pageSizeMask: 0n })).toThrow(/page_size_mask is 0/);
  });

  it('refuses MAP domains when the granule exceeds the guest page size (Linux)', () => {
    const { driver } = setup({ pageSizeMask: 0xffff_ffff_ffff_0000n });
    expect(driver.config.granule).toBe(0x1_0000n);
    expect(() => driver.createDomain()).toThrow(/larger than the guest page size/);
    // Bypass needs no mappings.
    expect(driver.createDomain('identity')).toBeTypeOf('number');
    expect(() => driver.createDomain('nested')).toThrow(/attachPasidTable/);
  });

  it('sizes its queues to what the device allows when not told', () => {
    const s = createScriptedIommu({ queueSize: 32 });
    const driver = new VirtioIommuDriver({
      mmio: s.bus,
      base: MMIO_BASE,
      memory: s.memory,
      allocator: s.allocator,
    });
    const batch = driver.batch();
    for (let i = 0; i < 20; i++) batch.unmap(1, i * 0x1000, 0x1000);
    const before = s.device.notifications.length;
    expect(batch.submit().ok).toBe(true);
    // 32 descriptors hold 16 two-descriptor requests: 20 requests take two notifications.
    expect(s.device.notifications.length - before).toBe(2);
  });

  it('writes bypass only when BYPASS_CONFIG was negotiated', () => {
    const { driver, device } = setup();
    driver.setBypass(false);
    expect(device.configWrites).toEqual([{ offset: ConfigOffset.BYPASS, value: 0 }]);
    expect(driver.config.bypass).toBe(false);
    const other = setup({ features: [IommuFeature.MAP_UNMAP] });
    expect(() => other.driver.setBypass(true)).toThrow(expect.objectContaining({ code: 'ENOSYS' }));
    expect(other.device.configWrites).toEqual([]);
  });
});

describe('lifecycle', () => {
  it('reports DEVICE_NEEDS_RESET from the configuration change interrupt', () => {
    const { driver, device } = setup();
    let resets = 0;
    driver.on('needsReset', () => resets++);
    device.needsReset('test');
    driver.handleInterrupt();
    expect(resets).toBe(1);
  });

  it('close() resets the device and gives back every page the driver took', () => {
    const s = createScriptedIommu();
    const free = s.allocator.freeBytes;
    const driver = new VirtioIommuDriver({
      mmio: s.bus,
      base: MMIO_BASE,
      memory: s.memory,
      allocator: s.allocator,
    });
    driver.probeEndpoint(1);
    expect(s.allocator.freeBytes).toBeLessThan(free);
    driver.close();
    expect(s.allocator.freeBytes).toBe(free);
    expect(s.transport.status).toBe(0);
    expect(() => driver.unmap(1, 0, 0x1000)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });
});

describe('batching', () => {
  it('sends N requests with one notification and collects every status', () => {
    const { driver, device } = setup({}, { requestQueueSize: 64 });
    device.handler = (req) => ({ status: req[0] === RequestType.UNMAP ? Status.RANGE : Status.OK });
    const before = device.notifications.filter((q) => q === 0).length;
    const batch = driver.batch();
    for (let i = 0; i < 20; i++) batch.map(1, i * 0x1000, 0x8000_0000 + i * 0x1000, 0x1000, MapFlag.READ);
    batch.unmap(1, 0, 0x1000);
    const result = batch.submit();
    expect(device.notifications.filter((q) => q === 0).length - before).toBe(1);
    expect(result.count).toBe(21);
    expect(result.failures).toHaveLength(1);
    expect(result.failures[0]!.request.index).toBe(20);
    expect(result.failures[0]!.code).toBe('ERANGE');
    const maps = device.requests.slice(-21, -1).map((r) => decodeRequest(r) as MapRequest);
    expect(maps[7]).toEqual({
      type: 'map',
      domain: 1,
      virtStart: 0x7000n,
      virtEnd: 0x7fffn,
      physStart: 0x8000_7000n,
      flags: MapFlag.READ,
    });
  });

  it('splits a batch larger than the queue into one notification per queue-full', () => {
    const { driver, device } = setup({}, { requestQueueSize: 8 });
    const batch = driver.batch();
    for (let i = 0; i < 10; i++) batch.unmap(2, i * 0x1000, 0x1000);
    const before = device.notifications.length;
    const result = batch.submit();
    expect(result.ok).toBe(true);
    // 8 descriptors hold 4 two-descriptor requests: 10 requests need 3 notifications.
    expect(device.notifications.length - before).toBe(3);
    expect(requestTypes(device.requests.slice(-10))).toEqual(new Array(10).fill(RequestType.UNMAP));
  });

  it('keeps 64-bit IOVAs exact at the top of the address space', () => {
    const { driver, device } = setup();
    driver.map(3, 0xffff_ffff_ffff_f000n, 0x4000_0000, 0x1000, { read: true });
    expect(decodeRequest(device.requests.at(-1)!)).toMatchObject({
      virtStart: 0xffff_ffff_ffff_f000n,
      virtEnd: 0xffff_ffff_ffff_ffffn,
      physStart: 0x4000_0000n,
    });
    driver.unmap(3, 0x1_0000_0000_0000n, 0x2_0000_0000n);
    expect(decodeRequest(device.requests.at(-1)!)).toMatchObject({
      virtStart: 0x1_0000_0000_0000n,
      virtEnd: 0x1_0002_0000_0000n - 1n,
    });
  });

  it('refuses requests the negotiated features do not allow, and bad INVALIDATE fields', () => {
    const plain = setup({ features: [IommuFeature.MAP_UNMAP] }).driver.batch();
    expect(() => plain.attach(1, 1, 1)).toThrow(expect.objectContaining({ code: 'ENOSYS' }));
    expect(() => plain.attach(1, 1, 2)).toThrow(/flags/);
    const inv = {
      granularity: 1,
      caches: 1,
      flags: 0,
      domain: 1,
      pasid: 0,
      archid: 0,
      virtStart: 0,
      nrPages: 0,
      granule: 0,
    };
    expect(() => plain.invalidate(inv)).toThrow(/ATTACH_TABLE/);
    expect(() => plain.attachTable(1, 1, { format: 1, payload: new Uint8Array([1, 0]) })).toThrow(
      /ATTACH_TABLE/,
    );
    const nested = setup().driver.batch();
    expect(() => nested.invalidate({ ...inv, granularity: 3 })).toThrow(/granularity/);
    expect(() => nested.invalidate({ ...inv, caches: 8 })).toThrow(/caches/);
    expect(() => nested.invalidate({ ...inv, granule: 64 })).toThrow(/granule/);
    expect(() => nested.invalidate({ ...inv, flags: 8 })).toThrow(/flags/);
    expect(() => nested.attachTable(1, 1, { format: 2, payload: new Uint8Array([1, 0]) })).toThrow(
      /le16 format/,
    );
    expect(nested.length + plain.length).toBe(0);
  });

  it('refuses bad arguments before anything is queued', () => {
    const { driver, device } = setup({
      inputRange: { start: 0n, end: 0xffff_ffffn },
      features: [IommuFeature.MAP_UNMAP, IommuFeature.INPUT_RANGE],
    });
    const batch = driver.batch();
    expect(() => batch.map(1, 0x1800, 0, 0x1000, MapFlag.READ)).toThrow(/not aligned to the 0x1000 granule/);
    expect(() => batch.map(1, 0x1000, 0, 0, MapFlag.READ)).toThrow(/size must be positive/);
    expect(() => batch.map(1, 0xffff_f000, 0, 0x2000, MapFlag.READ)).toThrow(
      expect.objectContaining({ code: 'ERANGE' }),
    );
    expect(() => batch.map(1, 0, 0, 0x1000, MapFlag.MMIO)).toThrow(/F_MMIO/);
    expect(() => batch.map(1, 0, 0, 0x1000, 8)).toThrow(/flags/);
    expect(() => batch.unmap(1, 0xffff_ffff_ffff_f000n, 0x2000n)).toThrow(/wraps past 2\^64/);
    expect(() => batch.map(-1, 0, 0, 0x1000, MapFlag.READ)).toThrow(/domain/);
    expect(batch.length).toBe(0);
    const sent = device.requests.length;
    expect(batch.submit().count).toBe(0);
    expect(device.requests.length).toBe(sent);
  });
});

describe('statuses', () => {
  const cases: [number, string][] = [
    [Status.IOERR, 'EIO'],
    [Status.UNSUPP, 'ENOSYS'],
    [Status.DEVERR, 'EIO'],
    [Status.INVAL, 'EINVAL'],
    [Status.RANGE, 'ERANGE'],
    [Status.NOENT, 'ENOENT'],
    [Status.FAULT, 'EFAULT'],
    [Status.NOMEM, 'ENOMEM'],
    [STATUS_NOT_WRITTEN, 'EIO'],
  ];
  it.each(cases)('status %i becomes %s with the failed request', (status, code) => {
    const { driver, device } = setup();
    device.handler = () => (status === STATUS_NOT_WRITTEN ? { usedLength: 0 } : { status });
    try {
      driver.map(7, 0x2000, 0x3000, 0x1000, { write: true });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(VirtioIommuRequestError);
      const e = error as VirtioIommuRequestError;
      expect(e.code).toBe(code);
      expect(e.status).toBe(status);
      expect(e.request.type).toBe('MAP');
      expect(e.request.fields).toMatchObject({
        domain: 7,
        virtStart: 0x2000n,
        virtEnd: 0x2fffn,
        physStart: 0x3000n,
      });
    }
  });

  it('polls inline: no request-queue interrupts', () => {
    const { driver, transport } = setup();
    driver.map(1, 0, 0x4000_0000, 0x1000);
    expect(transport.interruptStatus).toBe(0);
  });

  it('fails with a clear error instead of hanging when the device does not answer (inline mode)', () => {
    const { driver, device, transport: s } = setup();
    device.answers = false;
    expect(() => driver.unmap(1, 0, 0x1000)).toThrow(/answered 0 of 1 requests during the notification/);
    expect(s.interruptStatus).toBe(0);
    // The queue still holds the request: later submissions are refused rather than confused.
    device.answers = true;
    expect(() => driver.unmap(1, 0, 0x1000)).toThrow(expect.objectContaining({ code: 'EIO' }));
  });

  it('treats a PROBE answer shorter than probe_size + 4 as unanswered', () => {
    const { driver, device } = setup({ probeSize: 64 });
    device.handler = () => ({ usedLength: 32 });
    expect(() => driver.probeEndpoint(3)).toThrow(expect.objectContaining({ status: STATUS_NOT_WRITTEN }));
  });
});
