import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FaultFlag, FaultReason, IommuFeature } from '../protocol/constants.js';
import { encodeFaultReport } from '../protocol/fault.js';
import type { IommuFault } from './fault-events.js';
import { createScriptedDriver, type ScriptedIommuOptions } from './testing/scripted-iommu.js';

const EVENT_BUFFERS = 4;

function setup(options: ScriptedIommuOptions = {}) {
  const s = createScriptedDriver(options, { eventQueueSize: EVENT_BUFFERS });
  const { driver } = s;
  const faults: IommuFault[] = [];
  const ignored: [string, number][] = [];
  driver.on('fault', (f) => faults.push(f));
  driver.on('ignoredEvent', (reason, len) => ignored.push([reason, len]));
  return { ...s, faults, ignored };
}

describe('fault reports', () => {
  it('posts every event buffer at start and notifies the event queue', () => {
    const { device } = setup();
    expect(device.notifications).toContain(1);
    let sent = 0;
    while (device.sendEvent(encodeFaultReport({ reason: 2, flags: 0, endpoint: 1 }))) sent++;
    expect(sent).toBe(EVENT_BUFFERS);
  });

  it('emits typed faults with address and PASID, and re-posts every buffer it read', () => {
    const { device, driver, faults } = setup();
    for (let round = 0; round < 3; round++) {
      expect(
        device.sendEvent(
          encodeFaultReport({
            reason: FaultReason.PERMISSION,
            flags: FaultFlag.WRITE | FaultFlag.ADDRESS | FaultFlag.PASID,
            endpoint: 8,
            pasid: 5,
            address: 0xffff_ffff_ffff_f123n,
          }),
        ),
      ).toBe(true);
      expect(
        device.sendEvent(
          encodeFaultReport({ reason: FaultReason.DOMAIN, flags: FaultFlag.READ, endpoint: 9 }),
        ),
      ).toBe(true);
      expect(driver.handleInterrupt()).toBe(2);
    }
    expect(faults).toHaveLength(6);
    expect(faults[0]).toEqual({
      reason: 'permission',
      rawReason: 5,
      read: false,
      write: true,
      exec: false,
      flags: FaultFlag.WRITE | FaultFlag.ADDRESS | FaultFlag.PASID,
      endpoint: 8,
      address: 0xffff_ffff_ffff_f123n,
      pasid: 5,
    });
    expect(faults[1]).toEqual({
      reason: 'domain',
      rawReason: 1,
      read: true,
      write: false,
      exec: false,
      flags: FaultFlag.READ,
      endpoint: 9,
    });
    // Re-posting kept all buffers available: a full ring of reports still fits.
    let sent = 0;
    while (device.sendEvent(encodeFaultReport({ reason: 0, flags: 0, endpoint: 1 }))) sent++;
    expect(sent).toBe(EVENT_BUFFERS);
  });

  it('ignores reports with reserved bytes 1..3 set or a wrong length, and still re-posts them', () => {
    const { device, driver, faults, ignored } = setup();
    const bad = encodeFaultReport({ reason: 2, flags: 0, endpoint: 3 });
    bad[2] = 1;
    device.sendEvent(bad);
    device.sendEvent(encodeFaultReport({ reason: 2, flags: 0, endpoint: 4 }), 16);
    device.sendEvent(encodeFaultReport({ reason: 2, flags: 0, endpoint: 5 }));
    expect(driver.processEvents()).toBe(3);
    expect(faults.map((f) => f.endpoint)).toEqual([5]);
    expect(ignored).toEqual([
      ['reserved', 24],
      ['length', 16],
    ]);
    let sent = 0;
    while (device.sendEvent(encodeFaultReport({ reason: 0, flags: 0, endpoint: 1 }))) sent++;
    expect(sent).toBe(EVENT_BUFFERS);
  });

  it('without the nested extension treats nested reasons as UNKNOWN and ignores offset 12', () => {
    const { device, driver, faults } = setup({ features: [IommuFeature.MAP_UNMAP] });
    device.sendEvent(
      encodeFaultReport({
        reason: FaultReason.PTE_FETCH,
        flags: FaultFlag.PASID | FaultFlag.READ,
        endpoint: 2,
        pasid: 9,
      }),
    );
    device.sendEvent(encodeFaultReport({ reason: 200, flags: 0, endpoint: 2 }));
    driver.processEvents();
    expect(faults.map((f) => [f.reason, f.rawReason, f.pasid])).toEqual([
      ['unknown', FaultReason.PTE_FETCH, undefined],
      ['unknown', 200, undefined],
    ]);
  });

  it('re-posts buffers before a throwing listener runs', () => {
    const { device, driver } = setup();
    driver.removeAllListeners('fault');
    driver.on('fault', () => {
      throw new Error('listener bug');
    });
    device.sendEvent(encodeFaultReport({ reason: 2, flags: 0, endpoint: 1 }));
    expect(() => driver.processEvents()).toThrow('listener bug');
    let sent = 0;
    while (device.sendEvent(encodeFaultReport({ reason: 0, flags: 0, endpoint: 1 }))) sent++;
    expect(sent).toBe(EVENT_BUFFERS);
  });

  it('never throws on arbitrary report bytes and lengths, and keeps every buffer posted', () => {
    const { device, driver, faults, ignored } = setup();
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 24, maxLength: 24 }),
        fc.integer({ min: 0, max: 64 }),
        (bytes, len) => {
          const before = faults.length + ignored.length;
          expect(device.sendEvent(bytes, len)).toBe(true);
          expect(driver.processEvents()).toBe(1);
          expect(faults.length + ignored.length).toBe(before + 1);
          const reservedSet = bytes[1] !== 0 || bytes[2] !== 0 || bytes[3] !== 0;
          if (len !== 24 || reservedSet) {
            expect(ignored.at(-1)![0]).toBe(len !== 24 ? 'length' : 'reserved');
          } else {
            const f = faults.at(-1)!;
            const view = new DataView(bytes.buffer);
            expect(f.rawReason).toBe(bytes[0]);
            expect(f.endpoint).toBe(view.getUint32(8, true));
            expect(f.address === undefined).toBe((view.getUint32(4, true) & FaultFlag.ADDRESS) === 0);
            expect(f.pasid === undefined).toBe((view.getUint32(4, true) & FaultFlag.PASID) === 0);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
