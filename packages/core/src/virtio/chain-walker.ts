import { hex } from '../errors.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { ReusableChain } from './chain.js';
import {
  DESC_SIZE as DESC_SIZE_,
  MAX_CHAIN_BUFFERS,
  VIRTQ_DESC_F_INDIRECT as VIRTQ_DESC_F_INDIRECT_,
  VIRTQ_DESC_F_NEXT as VIRTQ_DESC_F_NEXT_,
  VIRTQ_DESC_F_WRITE as VIRTQ_DESC_F_WRITE_,
} from './layout.js';
import type { ChainErrorKind } from './queue-api.js';
import type { RingArea } from './ring-area.js';

// Local copies of the ring constants: some module loaders (vitest's, tsx) turn imported
// bindings into getter calls, which would dominate the hot paths below.
const DESC_SIZE = DESC_SIZE_;
const VIRTQ_DESC_F_INDIRECT = VIRTQ_DESC_F_INDIRECT_;
const VIRTQ_DESC_F_NEXT = VIRTQ_DESC_F_NEXT_;
const VIRTQ_DESC_F_WRITE = VIRTQ_DESC_F_WRITE_;

/** virtio 1.2 §2.7.5.2: a chain may not be longer than 2^32 bytes in total. */
const MAX_CHAIN_BYTES = 2 ** 32;
/** `next` is a le16, so entries of an indirect table past 65536 can never be reached. */
const MAX_INDIRECT_ENTRIES = 65536;
/** Addresses at or above 2^53 (high word ≥ 2^21) cannot be guest-physical addresses here. */
const MAX_ADDR_HIGH = 0x200000;

/**
 * Walks and validates the descriptor chains of one `DeviceQueue` (virtio 1.2 §2.7.5): follows
 * `next` links and indirect tables into the queue's reusable chain, refusing whatever the driver
 * got wrong. Everything read here was written by the driver and is hostile.
 */
export class ChainWalker {
  /** Detail of the last refused chain (set by `fail`). */
  errorDetail = '';
  /** Buffers a chain may hold (see MAX_CHAIN_BUFFERS). */
  private readonly maxBuffers: number;

  constructor(
    private readonly memory: GuestMemory,
    private readonly desc: RingArea,
    private readonly size: number,
    private readonly indirect: boolean,
    private readonly chain: ReusableChain,
  ) {
    this.maxBuffers = indirect ? Math.max(size, MAX_CHAIN_BUFFERS) : size;
  }

  private fail(kind: ChainErrorKind, detail: string): ChainErrorKind {
    this.errorDetail = detail;
    return kind;
  }

  /** Walks the chain at `head` into the reusable chain object; returns why it was refused, or `null`. */
  walk(head: number): ChainErrorKind | null {
    const chain = this.chain;
    chain.reset(head);
    const memory = this.memory;
    const indirectAllowed = this.indirect;
    let view = this.desc.view;
    let tableOffset = this.desc.offset;
    let tableSize = this.size;
    let inIndirect = false;
    // virtio 1.2 §2.7.5.3.1 / §2.7.5.2: a chain has at most as many descriptors as its table, so
    // a walk that needs more has looped.
    let budget = tableSize;
    let index = head;
    let total = 0;
    let buffers = 0;
    let seenWritable = false;
    if (index >= tableSize) {
      return this.fail('head-out-of-range', `head ${index} is not below the queue size ${tableSize}`);
    }
    for (;;) {
      if (budget-- === 0) {
        return this.fail(
          'loop',
          `chain at head ${head} visits more than ${tableSize} descriptors${inIndirect ? ' of its indirect table' : ''}`,
        );
      }
      const at = tableOffset + DESC_SIZE * index;
      const addrLow = view.getUint32(at, true);
      const addrHigh = view.getUint32(at + 4, true);
      const len = view.getUint32(at + 8, true);
      const flags = view.getUint16(at + 12, true);
      const next = view.getUint16(at + 14, true);
      if ((flags & VIRTQ_DESC_F_INDIRECT) !== 0) {
        // virtio 1.2 §2.7.5.3.1: only when negotiated, never nested, never together with NEXT.
        if (!indirectAllowed) {
          return this.fail(
            'indirect-not-negotiated',
            `descriptor ${index} is indirect but INDIRECT_DESC was not negotiated`,
          );
        }
        if (inIndirect)
          return this.fail('nested-indirect', `indirect table entry ${index} points to another table`);
        if ((flags & VIRTQ_DESC_F_NEXT) !== 0) {
          return this.fail('indirect-with-next', `descriptor ${index} sets both INDIRECT and NEXT`);
        }
        // virtio 1.2 §2.7.5.3.2: the table length is a non-zero multiple of 16 bytes.
        if (len === 0 || len % DESC_SIZE !== 0 || len / DESC_SIZE > MAX_INDIRECT_ENTRIES) {
          return this.fail(
            'indirect-bad-length',
            `indirect table length ${len} is not a multiple of 16 from 16 to 1 MiB`,
          );
        }
        if (addrHigh >= MAX_ADDR_HIGH) {
          return this.fail(
            'buffer-not-in-ram',
            `indirect table at 0x${addrHigh.toString(16)}_${addrLow.toString(16).padStart(8, '0')} is beyond guest memory`,
          );
        }
        const tableGpa = addrHigh * 0x100000000 + addrLow;
        // The walker indexes the bank directly, so the table must lie in one RAM bank.
        const bank = memory.ramBank(tableGpa, len, 'read');
        if (bank === null) {
          return this.fail(
            'buffer-not-in-ram',
            `indirect table ${hex(tableGpa)}+${len} is not inside one RAM bank`,
          );
        }
        // virtio 1.2 §2.7.5.3.1: the WRITE flag of the descriptor pointing to the table is ignored.
        view = bank.view;
        tableOffset = tableGpa - bank.gpa;
        tableSize = len / DESC_SIZE;
        budget = tableSize;
        inIndirect = true;
        index = 0;
        continue;
      }
      // virtio 1.2 §2.7.5.3.1 (chain length; MAX_CHAIN_BUFFERS says why 1024 with INDIRECT): a
      // 65536-entry table shared by many heads must not cost millions of steps per notification.
      if (++buffers > this.maxBuffers) {
        return this.fail(
          'chain-too-long',
          `chain at head ${head} holds more than ${this.maxBuffers} buffers`,
        );
      }
      const writable = (flags & VIRTQ_DESC_F_WRITE) !== 0;
      if (writable) seenWritable = true;
      else if (seenWritable) {
        // virtio 1.2 §2.7.5.2: device-writable descriptors come after all device-readable ones.
        return this.fail('readable-after-writable', `readable descriptor ${index} follows a writable one`);
      }
      total += len;
      if (total > MAX_CHAIN_BYTES) {
        return this.fail('chain-too-long', `chain at head ${head} holds more than 4 GiB`);
      }
      if (len !== 0) {
        if (addrHigh >= MAX_ADDR_HIGH) {
          return this.fail('buffer-not-in-ram', `descriptor ${index} addresses beyond guest memory`);
        }
        const addr = addrHigh * 0x100000000 + addrLow;
        // Buffers must be guest RAM the device may access in that direction (never device or
        // reserved banks, never read-only memory for a writable buffer).
        const access = writable ? 'write' : 'read';
        // One RAM bank holding the whole buffer is the common case; the full check also accepts
        // a buffer that spans adjacent RAM banks.
        if (memory.ramBank(addr, len, access) === null && !memory.isAccessible(addr, len, access)) {
          return this.fail(
            'buffer-not-in-ram',
            `${writable ? 'writable' : 'readable'} buffer ${hex(addr)}+${len} of descriptor ${index} is not guest RAM`,
          );
        }
        if (writable) chain.addWritable(addr, len);
        else chain.addReadable(addr, len);
      }
      if ((flags & VIRTQ_DESC_F_NEXT) === 0) return null;
      if (next >= tableSize) {
        return this.fail('next-out-of-range', `descriptor ${index} links to ${next}, not below ${tableSize}`);
      }
      index = next;
    }
  }
}
