import { describe, expect, it } from 'vitest';
import { MockSplitQueue } from '../testing/index.js';
import { VirtioMmioReg as Reg } from './mmio-registers.js';
import {
  ACK,
  DEVICE_NEEDS_RESET,
  DRIVER,
  DRIVER_OK,
  FAILED,
  FEATURES_OK,
  negotiate,
  program,
  RAM,
  type Setup,
  setup,
  V1,
} from './mmio-transport.fixture.js';
import { featureBit, VirtioFeature } from './types.js';

describe('virtio-mmio notifications, interrupts and reset', () => {
  function live(s: Setup): void {
    negotiate(s);
    program(s, 0);
    s.w(Reg.QUEUE_READY, 1);
    s.w(Reg.STATUS, ACK | DRIVER | FEATURES_OK | DRIVER_OK);
  }

  it('forwards QueueNotify for ready queues only after DRIVER_OK', () => {
    const s = setup();
    negotiate(s);
    program(s, 0);
    s.w(Reg.QUEUE_READY, 1);
    s.w(Reg.QUEUE_NOTIFY, 0);
    expect(s.device.notifications).toEqual([]);
    s.w(Reg.STATUS, ACK | DRIVER | FEATURES_OK | DRIVER_OK);
    s.w(Reg.QUEUE_NOTIFY, 0);
    s.w(Reg.QUEUE_NOTIFY, 1);
    s.w(Reg.QUEUE_NOTIFY, 0xffff_ffff);
    expect(s.device.notifications).toEqual([0]);
  });

  it('while a host polls, holds the notifications of a notified busy-poll queue and runs the device from poll()', () => {
    const s = setup();
    Object.defineProperty(s.device, 'busyPollQueues', { value: [0] });
    const mock = new MockSplitQueue(s.memory, RAM + 0x1000, 8);
    const { descTable, availRing, usedRing } = mock.layout;
    const buffer = [{ addr: RAM + 0x8_0000, len: 4 }];
    negotiate(s, V1 | featureBit(VirtioFeature.EVENT_IDX));
    s.w(Reg.QUEUE_SEL, 0);
    s.w(Reg.QUEUE_NUM, 8);
    s.w(Reg.QUEUE_DESC_LOW, descTable);
    s.w(Reg.QUEUE_DRIVER_LOW, availRing);
    s.w(Reg.QUEUE_DEVICE_LOW, usedRing);
    s.w(Reg.QUEUE_READY, 1);
    s.w(Reg.STATUS, ACK | DRIVER | FEATURES_OK | DRIVER_OK);
    expect(s.transport.poll()).toBe(0);
    s.transport.startPolling();
    mock.addChain(buffer);
    s.w(Reg.QUEUE_NOTIFY, 0);
    expect(s.device.notifications).toEqual([0]);
    // Drained, yet avail_event did not move on: the driver is not asked to notify again.
    expect(mock.availEvent).toBe(0);
    mock.addChain(buffer);
    expect(s.transport.poll()).toBe(1);
    expect(s.transport.poll()).toBe(0);
    mock.addChain(buffer);
    // Stopping re-arms avail_event, then finds the buffer added while notifications were held.
    expect(s.transport.stopPolling()).toBe(1);
    expect(mock.availEvent).toBe(3);
    mock.addChain(buffer);
    expect(s.transport.poll()).toBe(0);
    expect(s.device.notifications).toEqual([0, 0, 0]);
  });

  it('sets InterruptStatus bits until acknowledged and lowers the line when none remain', () => {
    const s = setup();
    live(s);
    s.device.activation!.notifyUsed(0);
    s.transport.configChanged();
    expect(s.r(Reg.INTERRUPT_STATUS)).toBe(3);
    expect(s.line.level).toBe(true);
    s.w(Reg.INTERRUPT_ACK, 1);
    expect(s.r(Reg.INTERRUPT_STATUS)).toBe(2);
    expect(s.line.level).toBe(true);
    s.w(Reg.INTERRUPT_ACK, 2);
    expect(s.r(Reg.INTERRUPT_STATUS)).toBe(0);
    expect(s.line.level).toBe(false);
    expect(s.r(Reg.CONFIG_GENERATION)).toBe(1);
  });

  it('sends no used-buffer notification before DRIVER_OK', () => {
    const s = setup();
    negotiate(s);
    s.transport.configChanged();
    expect(s.r(Reg.INTERRUPT_STATUS)).toBe(0);
    expect(s.line.raises).toBe(0);
  });

  it('sets DEVICE_NEEDS_RESET with a config interrupt when a queue breaks or the device throws', () => {
    const s = setup();
    live(s);
    // The driver claims 9 buffers in a ring of 8.
    s.memory.writeU16(RAM + 0x1400 + 2, 9);
    s.w(Reg.QUEUE_NOTIFY, 0);
    expect(s.r(Reg.STATUS) & DEVICE_NEEDS_RESET).toBe(DEVICE_NEEDS_RESET);
    expect(s.r(Reg.INTERRUPT_STATUS)).toBe(2);
    expect(s.events.at(-1)).toMatch(/queue 0: .*ahead/);
    // Once in DEVICE_NEEDS_RESET, notifications are not forwarded.
    s.w(Reg.QUEUE_NOTIFY, 0);
    expect(s.device.notifications).toEqual([0]);

    const t = setup();
    live(t);
    t.device.notify = () => {
      throw new Error('boom');
    };
    const errors: unknown[] = [];
    t.transport.on('deviceError', (e) => errors.push(e));
    expect(() => t.w(Reg.QUEUE_NOTIFY, 0)).not.toThrow();
    expect(errors).toHaveLength(1);
    expect(t.r(Reg.STATUS) & DEVICE_NEEDS_RESET).toBe(DEVICE_NEEDS_RESET);
  });

  it('resets device and transport on Status 0 and ignores the old activation afterwards', () => {
    const s = setup();
    live(s);
    const old = s.device.activation!;
    old.notifyUsed(0);
    s.w(Reg.STATUS, ACK | DRIVER | FEATURES_OK | DRIVER_OK | FAILED);
    expect(s.r(Reg.STATUS) & FAILED).toBe(FAILED);
    s.w(Reg.STATUS, 0);
    expect(s.device.resets).toBe(1);
    expect(s.r(Reg.STATUS)).toBe(0);
    expect(s.r(Reg.INTERRUPT_STATUS)).toBe(0);
    expect(s.line.level).toBe(false);
    expect(s.r(Reg.QUEUE_READY)).toBe(0);
    expect(old.queues[0]!.broken).toBe(true);
    old.notifyUsed(0);
    old.needsReset('stale');
    expect(s.r(Reg.INTERRUPT_STATUS)).toBe(0);
    expect(s.r(Reg.STATUS)).toBe(0);
    // A reset clears the queue programming: QueueReady needs all addresses again.
    negotiate(s);
    s.w(Reg.QUEUE_NUM, 8);
    s.w(Reg.QUEUE_READY, 1);
    expect(s.r(Reg.QUEUE_READY)).toBe(0);
  });
});
