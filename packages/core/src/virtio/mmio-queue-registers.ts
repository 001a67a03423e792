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
import { VirtioMmioReg } from './mmio-registers.js';
import { RingArea } from './ring-area.js';
import { DeviceStatus, type QueueLayout } from './types.js';

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

/**
 * The queue half of the register file (virtio 1.2 §4.2.2): QueueSel and the registers of every
 * queue behind it. Writes are taken only while the driver sets the device up, which the
 * transport's Status register (`status`) tells.
 */
export class QueueRegisterFile {
  /** QueueSel. */
  selected = 0;
  readonly queues: QueueRegisters[];

  constructor(private readonly device: { readonly queueMaxSizes: readonly number[] }) {
    this.queues = device.queueMaxSizes.map(() => new QueueRegisters());
  }

  /** QueueNumMax. */
  readNumMax(): number {
    // 0 tells the driver the selected queue does not exist.
    const max = this.device.queueMaxSizes[this.selected];
    return this.queues[this.selected] === undefined || max === undefined ? 0 : max >>> 0;
  }

  /** QueueReady. */
  readReady(): number {
    return this.queues[this.selected]?.ready ? 1 : 0;
  }

  /** QueueNum. */
  writeNum(status: number, value: number): void {
    const q = this.writable(status);
    if (q !== null) q.num = value;
  }

  /** QueueDescLow … QueueDeviceHigh, at `offset` in the register file. */
  writeAddress(status: number, offset: number, value: number): void {
    const q = this.writable(status);
    if (q === null) return;
    const slot = ((offset - VirtioMmioReg.QUEUE_DESC_LOW) >>> 4) * 2 + ((offset >>> 2) & 1);
    q.addr[slot] = value;
    q.wrote |= 1 << (slot >>> 1);
  }

  /** QueueReady: why enabling the selected queue was refused, or `null` (done, or nothing to do). */
  writeReady(status: number, value: number, memory: GuestMemory): string | null {
    const index = this.selected;
    const q = this.queues[index];
    if (q === undefined) return null;
    if ((status & (DeviceStatus.DRIVER_OK | DeviceStatus.DEVICE_NEEDS_RESET)) !== 0) return null;
    if (value === 0) {
      q.ready = false;
      return null;
    }
    if (value !== 1 || q.ready) return null;
    // virtio 1.2 §3.1.1: queues are set up after FEATURES_OK, so the ring format is known.
    const problem =
      (status & DeviceStatus.FEATURES_OK) === 0
        ? 'QueueReady before FEATURES_OK'
        : q.problem(memory, this.device.queueMaxSizes[index]!);
    if (problem === null) q.ready = true;
    return problem;
  }

  /** Device reset: QueueSel and every queue's registers back to 0. */
  clear(): void {
    for (const q of this.queues) q.clear();
    this.selected = 0;
  }

  /** The selected queue if its registers may be written: before DRIVER_OK and while not ready. */
  private writable(status: number): QueueRegisters | null {
    const q = this.queues[this.selected];
    if (q === undefined || q.ready) return null;
    // virtio 1.2 §4.2.3.2: queues are configured during initialisation, before DRIVER_OK.
    if ((status & (DeviceStatus.DRIVER_OK | DeviceStatus.DEVICE_NEEDS_RESET)) !== 0) return null;
    return q;
  }
}
