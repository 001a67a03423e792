export type { GuestReport } from './machine.js';
export { composeMachine, DMA_ENDPOINT, HIGH_RAM, LOW_RAM } from './machine.js';
export type { MailboxOptions } from './mailbox.js';
export {
  MAILBOX_COMPATIBLE,
  MAILBOX_MAGIC,
  MAILBOX_MAX_MESSAGE,
  MailboxReg,
  MailboxStatus,
  mailbox,
} from './mailbox.js';
