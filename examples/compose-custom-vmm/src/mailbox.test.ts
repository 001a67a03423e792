/** The mailbox takes whatever the guest writes: capped messages, any bytes, any access width. */
import { createVm, type Vm } from '@vmmkit/vmm';
import { afterEach, describe, expect, it } from 'vitest';
import { MAILBOX_MAGIC, MAILBOX_MAX_MESSAGE, MailboxReg, MailboxStatus, mailbox } from './mailbox.js';

let vm: Vm | null = null;
afterEach(async () => {
  await vm?.destroy();
  vm = null;
});

async function withMailbox(onMessage?: (text: string, index: number) => number | undefined) {
  const box = mailbox(onMessage ? { onMessage } : {});
  vm = await createVm({ memory: 1024 * 1024, mode: 'inline', devices: [box] });
  const base = vm.deviceNodes[0]!.base;
  const bus = vm.bus;
  const send = (bytes: Iterable<number>) => {
    for (const b of bytes) bus.write(base + MailboxReg.TX, 4, b);
    bus.write(base + MailboxReg.SEND, 4, 1);
  };
  return { box, bus, base, send, irq: () => vm!.irqs.isPending(vm!.deviceNodes[0]!.irq!) };
}

describe('mailbox device', () => {
  it('delivers a message, raises the line with the reply, and drops it once the reply is read', async () => {
    const { box, bus, base, send, irq } = await withMailbox((text) => text.length);
    expect(bus.read(base + MailboxReg.MAGIC, 4)).toBe(MAILBOX_MAGIC);
    send(new TextEncoder().encode('héllo'));
    expect(box.messages).toEqual(['héllo']);
    expect(irq()).toBe(true);
    expect(bus.read(base + MailboxReg.STATUS, 4)).toBe(MailboxStatus.REPLY);
    expect(bus.read(base + MailboxReg.REPLY, 4)).toBe(5);
    expect(irq()).toBe(false);
    expect(bus.read(base + MailboxReg.STATUS, 4)).toBe(0);
  });

  it('caps a long message, marks it truncated, and turns bytes that are not UTF-8 into U+FFFD', async () => {
    const { box, bus, base, send } = await withMailbox();
    send(Array.from({ length: MAILBOX_MAX_MESSAGE + 1000 }, () => 0x41));
    expect(box.messages[0]).toBe('A'.repeat(MAILBOX_MAX_MESSAGE));
    expect(bus.read(base + MailboxReg.STATUS, 4)).toBe(MailboxStatus.TRUNCATED);
    send([0xff, 0xc3, 0x28, 0x141]);
    expect(box.messages[1]).toBe('\ufffd\ufffd(A');
    expect(bus.read(base + MailboxReg.STATUS, 4)).toBe(0);
  });

  it('never throws at the guest: unknown offsets, odd widths, a failing host handler', async () => {
    const { box, bus, base, send, irq } = await withMailbox(() => {
      throw new Error('host handler bug');
    });
    const errors: unknown[] = [];
    vm!.on('deviceError', (e) => errors.push(e));
    for (const offset of [0x3, 0x14, 0xffc, 0xfff]) {
      expect(bus.read(base + offset, 1)).toBe(0);
      bus.write(base + offset, 8, 2 ** 40);
    }
    send([0x68, 0x69]);
    expect(box.messages).toEqual(['hi']);
    expect(errors).toEqual([new Error('host handler bug')]);
    expect(irq()).toBe(false);
    expect(bus.stats.handlerErrors).toBe(0);
  });
});
