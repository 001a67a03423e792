import { hex } from '../errors.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import {
  AVAIL_ALIGN,
  availRingBytes,
  DESC_ALIGN,
  descTableBytes,
  USED_ALIGN,
  usedRingBytes,
} from './layout.js';
import { RingArea } from './ring-area.js';
import type { QueueLayout } from './types.js';

/** Bits of `QueueRegisters.wrote`: which address registers were written since reset. */
const WROTE_ALL = 7;

function joinAddress(low: number, high: number): number {
  // High words ≥ 2^21 make addresses beyond 2^53: return a value no RAM check accepts.
  return high >= 0x200000 ? -1 : high * 0x100000000 + low;
}

/** What the driver programmed for one queue through QueueNum and the six address registers. */
export class QueueRegisters {
  num = 0;
  ready = false;
  /** desc low/high, driver low/high, device low/high. */
  readonly addr = new Uint32Array(6);
  /** Bit 0 descriptor area, bit 1 driver area, bit 2 device area: written since reset. */
  wrote = 0;

  clear(): void {
    this.num = 0;
    this.ready = false;
    this.addr.fill(0);
    this.wrote = 0;
  }

  layout(): QueueLayout {
    const a = this.addr;
    return {
      size: this.num,
      descTable: joinAddress(a[0]!, a[1]!),
      availRing: joinAddress(a[2]!, a[3]!),
      usedRing: joinAddress(a[4]!, a[5]!),
    };
  }

  /** Why the queue cannot be enabled with QueueReady, or `null`. The queue then stays not ready. */
  problem(memory: GuestMemory, max: number): string | null {
    if ((this.wrote & WROTE_ALL) !== WROTE_ALL)
      return 'QueueReady before all three ring addresses were written';
    const n = this.num;
    // virtio 1.2 §2.7 and §4.2.2: QueueNum is a power of two no larger than QueueNumMax.
    if (n === 0 || n > max || (n & (n - 1)) !== 0 || n > 32768) {
      return `QueueNum ${n} is not a power of two from 1 to QueueNumMax ${max}`;
    }
    const layout = this.layout();
    const parts = [
      ['descriptor table', layout.descTable, DESC_ALIGN, descTableBytes(n), 'read'],
      ['driver area', layout.availRing, AVAIL_ALIGN, availRingBytes(n), 'read'],
      ['device area', layout.usedRing, USED_ALIGN, usedRingBytes(n), 'write'],
    ] as const;
    for (const [name, addr, align, bytes, access] of parts) {
      // virtio 1.2 §2.7 "Virtqueue Part Alignment".
      if (addr < 0 || addr % align !== 0) {
        return `${name} address ${addr < 0 ? 'beyond 2^53' : hex(addr)} is not ${align}-byte aligned RAM`;
      }
      // The ring must be RAM the device may access; this model also needs each part in one bank.
      if (RingArea.resolve(memory, addr, bytes, access) === null) {
        return `${name} ${hex(addr)}+${bytes} is not inside one ${access === 'write' ? 'writable ' : ''}RAM bank`;
      }
    }
    return null;
  }
}
