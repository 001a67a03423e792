/** The mailbox takes whatever the guest writes: capped messages, any bytes, any access width. */
import { createVm, type Vm } from '@vmmkit/vmm';
import fc from 'fast-check';
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

  it('takes any sequence of accesses without throwing; every message stays within the cap (property)', async () => {
    const replies: number[] = [];
    const { box, bus, base, irq } = await withMailbox((text, index) => {
      replies.push(index);
      return text.length;
    });
    const access = fc.record({
      offset: fc.oneof(fc.constantFrom(0, 4, 8, 12, 16), fc.integer({ min: 0, max: 0x1007 })),
      size: fc.constantFrom<1 | 2 | 4 | 8>(1, 2, 4, 8),
      value: fc.oneof(fc.nat(0xffff_ffff), fc.constantFrom(2 ** 40, -1, 0x80)),
      read: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(access, { maxLength: 600 }), (accesses) => {
        for (const a of accesses) {
          if (a.read) {
            const v = bus.read(base + a.offset, a.size);
            expect(Number.isInteger(v) && v >= 0 && v < 2 ** 32).toBe(true);
          } else bus.write(base + a.offset, a.size, a.value);
        }
        // Whatever happened, the line means exactly "a reply is waiting".
        expect(irq()).toBe((bus.read(base + MailboxReg.STATUS, 4) & MailboxStatus.REPLY) !== 0);
      }),
      { numRuns: 200 },
    );
    expect(box.messages.length).toBeGreaterThan(10);
    for (const m of box.messages) expect(m.length).toBeLessThanOrEqual(MAILBOX_MAX_MESSAGE);
    expect(replies).toEqual(box.messages.map((_, i) => i));
    expect(bus.stats.handlerErrors).toBe(0);
  });
});
