/**
 * The example's own device: a mailbox between guest and host. The guest writes a message byte
 * by byte and rings SEND; the host reads it, may answer with a 32-bit word, and raises the
 * interrupt. Everything the guest writes is untrusted: messages are capped, bytes that are not
 * UTF-8 become U+FFFD, and nothing the guest does makes the device throw.
 *
 * | Off  | Name   | Acc | Meaning |
 * |------|--------|-----|---------|
 * | 0x00 | MAGIC  | RO  | 0x584f424d ("MBOX") |
 * | 0x04 | TX     | WO  | bits 0..7: the next byte of the message |
 * | 0x08 | SEND   | WO  | any value: hand the message to the host (a posted doorbell) |
 * | 0x0c | REPLY  | RO  | the host's answer to the last message; reading it clears STATUS.REPLY and the line |
 * | 0x10 | STATUS | RO  | bit 0 REPLY pending, bit 1 the last message was truncated |
 */
import type { MmioHandler } from '@vmmkit/core';
import type { DeviceSpec } from '@vmmkit/vmm';

export const MailboxReg = { MAGIC: 0x00, TX: 0x04, SEND: 0x08, REPLY: 0x0c, STATUS: 0x10 } as const;
export const MailboxStatus = { REPLY: 1, TRUNCATED: 2 } as const;
export const MAILBOX_MAGIC = 0x584f424d;
export const MAILBOX_COMPATIBLE = 'example,mailbox';
/** Longest message kept; further bytes are dropped and the message is marked truncated. */
export const MAILBOX_MAX_MESSAGE = 256;

export interface MailboxOptions {
  name?: string;
  /** Called on the host for every message; a number returned is the reply the guest reads. */
  onMessage?: (text: string, index: number) => number | undefined;
}

/** A mailbox device spec; `messages` holds what the guest sent, in order. */
export function mailbox(options: MailboxOptions = {}): DeviceSpec & { readonly messages: string[] } {
  const messages: string[] = [];
  const decoder = new TextDecoder('utf-8', { fatal: false });
  return {
    name: options.name ?? 'mailbox',
    compatible: MAILBOX_COMPATIBLE,
    mmioSize: 0x1000,
    messages,
    create(ctx) {
      const pending = new Uint8Array(MAILBOX_MAX_MESSAGE);
      let length = 0;
      let truncated = false;
      let reply = 0;
      let status = 0;
      const send = () => {
        const text = decoder.decode(pending.subarray(0, length));
        status = truncated ? MailboxStatus.TRUNCATED : 0;
        length = 0;
        truncated = false;
        messages.push(text);
        let answer: number | undefined;
        try {
          answer = options.onMessage?.(text, messages.length - 1);
        } catch (error) {
          // The host's handler failing is the host's problem: report it, leave the guest unanswered.
          ctx.reportError(error);
          return;
        }
        if (answer === undefined) return;
        reply = answer >>> 0;
        status |= MailboxStatus.REPLY;
        ctx.irq.raise();
      };
      const mmio: MmioHandler = {
        name: ctx.name,
        size: 0x1000,
        read(offset) {
          if (offset === MailboxReg.MAGIC) return MAILBOX_MAGIC;
          if (offset === MailboxReg.STATUS) return status;
          if (offset !== MailboxReg.REPLY) return 0;
          status &= ~MailboxStatus.REPLY;
          ctx.irq.lower?.();
          return reply;
        },
        write(offset, _size, value) {
          if (offset === MailboxReg.SEND) send();
          else if (offset !== MailboxReg.TX) return;
          else if (length < MAILBOX_MAX_MESSAGE) pending[length++] = value & 0xff;
          else truncated = true;
        },
      };
      return { mmio, doorbells: [MailboxReg.SEND] };
    },
  };
}
