import { isVmmError } from '@vmmkit/core';
import { describe, expect, it } from 'vitest';
import { ConfigOffset, IommuFeature, MapFlag, Status } from '../protocol/constants.js';
import { encodeAttach, encodeMap } from '../protocol/requests.js';
import { createVirtioIommuHarness, requestStatus } from '../testing/index.js';
import { createVirtioIommuDevice } from './device.js';
import type { IommuFeatureOptions, VirtioIommuDeviceOptions } from './options.js';

/** Host-side API misuse is a typed VmmError that says what to fix; nothing is half-applied. */

function refusal(options: VirtioIommuDeviceOptions): string {
  try {
    createVirtioIommuDevice(options);
  } catch (error) {
    expect(isVmmError(error)).toBe(true);
    return (error as Error).message;
  }
  throw new Error('the options were accepted');
}

describe('device options', () => {
  it('refuses invalid configurations with a clear message', () => {
    expect(refusal({ endpoints: [], pageSizeMask: 0n })).toMatch(/pageSizeMask/);
    expect(refusal({ endpoints: [], inputRange: { start: 10n, end: 9n } })).toMatch(/inputRange/);
    expect(refusal({ endpoints: [], inputRange: { start: 0n, end: 1n << 64n } })).toMatch(/inputRange.end/);
    expect(refusal({ endpoints: [], domainRange: { start: 5, end: 4 } })).toMatch(/domainRange/);
    expect(refusal({ endpoints: [{ id: 1 }, { id: 1 }] })).toMatch(/listed twice/);
    expect(refusal({ endpoints: [{ id: -1 }] })).toMatch(/id must be a le32/);
    expect(
      refusal({ endpoints: [{ id: 1, reservedRegions: [{ start: 5n, end: 4n, subtype: 'msi' }] }] }),
    ).toMatch(/start 0x5 is above end/);
    expect(
      refusal({
        endpoints: [
          {
            id: 1,
            reservedRegions: [
              { start: 0n, end: 0xfffn, subtype: 'reserved' },
              { start: 0x800n, end: 0x1fffn, subtype: 'reserved' },
            ],
          },
        ],
      }),
    ).toMatch(/overlapping/);
    expect(
      refusal({
        endpoints: [
          {
            id: 1,
            reservedRegions: [
              { start: 0n, end: 0xfffn, subtype: 'msi' },
              { start: 0x1000n, end: 0x1fffn, subtype: 'msi' },
            ],
          },
        ],
      }),
    ).toMatch(/more than one MSI/);
    expect(refusal({ endpoints: [], queueSize: 100 })).toMatch(/power of two/);
    expect(refusal({ endpoints: [], maxDomains: 0 })).toMatch(/maxDomains/);
    expect(
      refusal({
        endpoints: [{ id: 1, reservedRegions: [{ start: 0n, end: 1n, subtype: 'msi' }] }],
        probeSize: 8,
      }),
    ).toMatch(/raise probeSize/);
  });

  it('offers each feature as configured; one not offered is not enforced (virtio 1.2 §5.13.3-4)', async () => {
    const options: [keyof IommuFeatureOptions, number][] = [
      ['inputRange', IommuFeature.INPUT_RANGE],
      ['domainRange', IommuFeature.DOMAIN_RANGE],
      ['mapUnmap', IommuFeature.MAP_UNMAP],
      ['bypass', IommuFeature.BYPASS],
      ['probe', IommuFeature.PROBE],
      ['mmio', IommuFeature.MMIO],
      ['bypassConfig', IommuFeature.BYPASS_CONFIG],
      ['attachTable', IommuFeature.ATTACH_TABLE],
    ];
    for (const [name, bit] of options) {
      for (const on of [true, false]) {
        const device = createVirtioIommuDevice({ endpoints: [], features: { [name]: on } });
        expect({ name, on, offered: (device.deviceFeatures >> BigInt(bit)) & 1n }).toEqual({
          name,
          on,
          offered: on ? 1n : 0n,
        });
      }
    }
    // The ranges bind the driver only when offered: without them any domain and IOVA is valid.
    const narrow = {
      endpoints: [{ id: 1 }],
      inputRange: { start: 0n, end: 0xf_ffffn },
      domainRange: { start: 0, end: 7 },
    };
    const map = encodeMap({ domain: 9, virtStart: 0x10_0000, virtEnd: 0x10_0fff, physStart: 0, flags: 1 });
    const free = createVirtioIommuHarness({ ...narrow, features: { inputRange: false, domainRange: false } });
    expect(await requestStatus(free, encodeAttach({ domain: 9, endpoint: 1 }))).toBe(Status.OK);
    expect(await requestStatus(free, map)).toBe(Status.OK);
    const bound = createVirtioIommuHarness(narrow);
    expect(await requestStatus(bound, encodeAttach({ domain: 9, endpoint: 1 }))).toBe(Status.RANGE);
    expect(await requestStatus(bound, encodeAttach({ domain: 7, endpoint: 1 }))).toBe(Status.OK);
    map[4] = 7;
    expect(await requestStatus(bound, map)).toBe(Status.RANGE);
    // Without F_MAP_UNMAP, MAP and UNMAP are unknown types: returned unwritten.
    const noMap = createVirtioIommuHarness({ endpoints: [{ id: 1 }], features: { mapUnmap: false } });
    expect(await requestStatus(noMap, encodeAttach({ domain: 7, endpoint: 1 }))).toBe(Status.OK);
    expect(await requestStatus(noMap, map)).toBe('unanswered');
  });

  it('configure() changes fields while no driver runs, and is refused while one does', async () => {
    const h = createVirtioIommuHarness({ endpoints: [{ id: 1 }] });
    expect(() => h.device.configure({ probeSize: 64 })).toThrow(/driver is running/);
    h.guest.virtio.reset();
    expect(() => h.device.configure({ domainRange: { start: 9, end: 1 } })).toThrow(/domainRange/);
    h.device.configure({
      pageSizeMask: 0xffff_0000n,
      domainRange: { start: 10, end: 20 },
      probeSize: 64,
      bypass: false,
    });
    expect(h.device.readConfig(ConfigOffset.PROBE_SIZE, 4)).toBe(64);
    expect(h.device.readConfig(ConfigOffset.DOMAIN_START, 4)).toBe(10);
    expect(h.device.readConfig(ConfigOffset.PAGE_SIZE_MASK, 4)).toBe(0xffff_0000);
    expect(h.device.readConfig(ConfigOffset.BYPASS, 1)).toBe(0);
  });

  it('the new geometry applies to the next driver', async () => {
    const h = createVirtioIommuHarness({ endpoints: [{ id: 1 }] });
    const map4k = encodeMap({
      domain: 1,
      virtStart: 0x1000,
      virtEnd: 0x1fff,
      physStart: 0,
      flags: MapFlag.READ,
    });
    expect(await requestStatus(h, encodeAttach({ domain: 1, endpoint: 1 }))).toBe(Status.OK);
    expect(await requestStatus(h, map4k)).toBe(Status.OK);
    h.guest.virtio.reset();
    h.device.configure({ pageSizeMask: 0xffff_ffff_ffff_0000n, domainRange: { start: 1, end: 1 } });
    h.restart();
    expect(h.guest.virtio.readConfig64(ConfigOffset.PAGE_SIZE_MASK)).toBe(0xffff_ffff_ffff_0000n);
    expect(await requestStatus(h, encodeAttach({ domain: 2, endpoint: 1 }))).toBe(Status.RANGE);
    expect(await requestStatus(h, encodeAttach({ domain: 1, endpoint: 1 }))).toBe(Status.OK);
    expect(await requestStatus(h, map4k)).toBe(Status.RANGE);
  });

  it('setBypass updates the field at run time and signals a configuration change', () => {
    const h = createVirtioIommuHarness({ endpoints: [{ id: 1 }], bypass: true });
    const before = h.guest.virtio.configGeneration();
    const interrupts = h.interrupts;
    h.device.setBypass(false);
    expect(h.guest.virtio.readConfig8(ConfigOffset.BYPASS)).toBe(0);
    expect(h.guest.virtio.configGeneration()).not.toBe(before);
    expect(h.interrupts).toBe(interrupts + 1);
    expect(h.translate({ endpoint: 1, iova: 0n, access: 'read' }).ok).toBe(false);
  });
});
