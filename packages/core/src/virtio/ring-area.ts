import type { MemoryBank } from '../memory/bank.js';
import type { GuestMemory, MemoryAccess } from '../memory/guest-memory.js';

/** Typed arrays use the platform byte order; the ring is little-endian. */
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** One 16-bit view per shared buffer, so ring indexes can be read and published with Atomics. */
const halfWordViews = new WeakMap<SharedArrayBuffer, Uint16Array>();

function halfWords(buffer: SharedArrayBuffer): Uint16Array {
  let view = halfWordViews.get(buffer);
  if (view === undefined) {
    view = new Uint16Array(buffer, 0, buffer.byteLength >>> 1);
    halfWordViews.set(buffer, view);
  }
  return view;
}

/**
 * One part of a split ring (descriptor table, driver area or device area), resolved once to the
 * RAM bank that holds all of it so that every later access is an index into that bank.
 *
 * Ring indexes (`avail.idx`, `used.idx`, `used_event`, `avail_event`, the ring flags) go through
 * `Atomics` on a 16-bit view of the shared buffer: JS's memory model only orders plain accesses
 * of different threads through synchronising atomics, so the side that publishes an index uses
 * `Atomics.store` after its plain writes of entries, and the side that consumes it uses
 * `Atomics.load` before its plain reads of those entries (the release/acquire pairs the virtio
 * spec asks for with its memory barriers, virtio 1.2 §2.7.13.3 and §2.7.8). The seq-cst order of
 * atomics also provides the full barrier between publishing an index and reading the other
 * side's event index (§2.7.10). Should the bank sit at an odd byte offset of its buffer (no
 * aligned 16-bit view exists) or the host be big-endian, the accessors fall back to the DataView.
 */
export class RingArea {
  readonly bank: MemoryBank;
  /** Byte offset of the area inside `bank.bytes` / `bank.view`. */
  readonly offset: number;
  readonly view: DataView;
  private readonly halves: Uint16Array | null;
  /** Index of the area's first byte in `halves` (valid only when `halves` is set). */
  private readonly halfBase: number;

  private constructor(bank: MemoryBank, offset: number) {
    this.bank = bank;
    this.offset = offset;
    this.view = bank.view;
    const absolute = bank.bufferOffset + offset;
    if (bank.buffer !== null && LITTLE_ENDIAN_HOST && absolute % 2 === 0) {
      this.halves = halfWords(bank.buffer);
      this.halfBase = absolute >>> 1;
    } else {
      this.halves = null;
      this.halfBase = 0;
    }
  }

  /** The area if `[gpa, gpa + length)` lies in one RAM bank allowing `access`, else `null`. */
  static resolve(memory: GuestMemory, gpa: number, length: number, access: MemoryAccess): RingArea | null {
    if (!Number.isSafeInteger(gpa) || gpa < 0) return null;
    const bank = memory.ramBank(gpa, length, access);
    if (bank === null) return null;
    return new RingArea(bank, gpa - bank.gpa);
  }

  /** Atomic load of the little-endian u16 at `at` bytes into the area (`at` even). */
  loadU16(at: number): number {
    const halves = this.halves;
    if (halves !== null) return Atomics.load(halves, this.halfBase + (at >>> 1));
    return this.view.getUint16(this.offset + at, true);
  }

  /** Atomic store of a u16 at `at` bytes into the area (`at` even). */
  storeU16(at: number, value: number): void {
    const halves = this.halves;
    if (halves !== null) Atomics.store(halves, this.halfBase + (at >>> 1), value & 0xffff);
    else this.view.setUint16(this.offset + at, value & 0xffff, true);
  }
}
