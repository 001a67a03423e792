/**
 * A driver on a vCPU that owns its thread (worker mode): it polls the used ring, then blocks in
 * its `wait` hook with interrupts on, acknowledges them, and bounds how long it waits.
 */
import { describe, expect, it } from 'vitest';
import { RequestType } from '../protocol/constants.js';
import { encodeFaultReport } from '../protocol/fault.js';
import { decodeRequest } from '../protocol/requests.js';
import type { VirtioIommuDriver } from './driver.js';
import { createScriptedDriver as setup } from './testing/scripted-iommu.js';

describe('worker-mode waits', () => {
  it('bounds the waits of a worker-mode driver', () => {
    let waits = 0;
    const s = setup(
      { answers: false },
      {
        wait: () => {
          waits++;
        },
        maxWaits: 25,
      },
    );
    const driver = s.driver;
    expect(() => driver.unmap(1, 0, 0x1000)).toThrow(/after 25 waits/);
    expect(waits).toBe(25);
  });

  it('bounds the time a worker-mode driver waits', () => {
    const sleeper = new Int32Array(new SharedArrayBuffer(4));
    const { driver } = setup(
      { answers: false },
      {
        wait: () => {
          Atomics.wait(sleeper, 0, 0, 2);
        },
        maxWaits: Number.MAX_SAFE_INTEGER,
        timeoutMs: 10,
      },
    );
    expect(() => driver.unmap(1, 0, 0x1000)).toThrow(/in 10 ms/);
  });

  it('polls the used ring before it blocks: an answer found there needs no wait and raises no interrupt', () => {
    let waits = 0;
    const s = setup(
      {},
      {
        wait: () => {
          waits++;
        },
      },
    );
    const driver = s.driver;
    const raisedBefore = s.interrupts.raised;
    for (let i = 0; i < 10; i++) driver.map(1, i * 0x1000, 0x10_0000, 0x1000);
    expect(s.device.requests.filter((r) => r[0] === RequestType.MAP)).toHaveLength(10);
    expect(waits).toBe(0);
    // virtio 1.2 §2.7.10: the driver asked for no used-buffer interrupts while it polls.
    expect(s.interrupts.raised).toBe(raisedBefore);
  });

  it('asks for the interrupt again only when it gives up polling and blocks', () => {
    let waits = 0;
    const s = setup(
      { answers: false },
      {
        pollSpins: 3,
        wait: () => {
          waits++;
          s.device.answers = true;
          s.device.notify(0);
        },
      },
    );
    const driver = s.driver;
    const raisedBefore = s.interrupts.raised;
    driver.unmap(1, 0, 0x1000);
    expect(waits).toBe(1);
    expect(s.interrupts.raised).toBe(raisedBefore + 1);
  });

  it('completes when the device answers during a wait (worker mode)', () => {
    const s = setup(
      { answers: false },
      {
        wait: () => {
          s.device.answers = true;
          s.device.notify(0);
        },
      },
    );
    const driver = s.driver;
    driver.unmap(1, 0, 0x1000);
    expect(s.device.requests.at(-1)![0]).toBe(RequestType.UNMAP);
  });

  it('acknowledges the interrupt while waiting, and hands faults to listeners once the batch is done', () => {
    const s = setup(
      { answers: false },
      {
        wait: () => {
          s.device.sendEvent(encodeFaultReport({ reason: 2, flags: 0, endpoint: 4 }));
          s.device.answers = true;
          s.device.notify(0);
        },
      },
    );
    const driver = s.driver;
    const seen: number[] = [];
    // A listener may send requests itself: the batch that waited is finished by then.
    driver.on('fault', (fault) => {
      seen.push(fault.endpoint);
      driver.unmap(1, 0x1000, 0x1000);
    });
    driver.unmap(1, 0, 0x1000);
    expect(seen).toEqual([4]);
    expect(driver.handleInterrupt()).toBe(0);
    expect(seen).toEqual([4]);
    expect(decodeRequest(s.device.requests.at(-1)!)).toMatchObject({ type: 'unmap', virtStart: 0x1000n });
  });

  it('refuses a request submitted while another batch waits, and a throwing wait hook breaks the queue', () => {
    let driver: VirtioIommuDriver | undefined;
    ({ driver } = setup({ answers: false }, { wait: () => driver!.unmap(2, 0, 0x1000) }));
    expect(() => driver!.unmap(1, 0, 0x1000)).toThrow(/submitted while another batch waits/);
    expect(() => driver!.unmap(1, 0, 0x1000)).toThrow(/the wait hook threw/);
  });
});
