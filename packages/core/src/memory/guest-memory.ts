import { hex, VmmError } from '../errors.js';
import { TypedEmitter } from '../events.js';
import { type BankDescriptor, type BankKind, type BankOptions, MemoryBank } from './bank.js';
import { fillBytes } from './fill.js';

export type MemoryAccess = 'read' | 'write';

/** Why an access was refused; carried in `VmmError.details.reason`. */
export type AccessFault = 'gap' | 'device' | 'reserved' | 'read-only' | 'range';

export interface GuestMemoryEvents {
  /** A bank was plugged in (at creation or at run time). */
  bankAdded: (bank: MemoryBank) => void;
  /** A bank was unplugged; its buffer is no longer part of guest memory. */
  bankRemoved: (bank: MemoryBank) => void;
}

/**
 * Guest-physical memory as an ordered list of banks, shared by guest threads and host devices.
 *
 * Every accessor checks the whole access: it must lie in RAM, possibly across adjacent RAM banks,
 * and a write must not touch a read-only bank. The checks cost one comparison against the bank
 * that served the previous access, so hot paths stay cheap without bypassing them.
 */
export class GuestMemory extends TypedEmitter<GuestMemoryEvents> {
  private banks: MemoryBank[] = [];
  private last: MemoryBank | null = null;
  private readonly scratch = new DataView(new ArrayBuffer(8));

  /** Builds memory from bank descriptors, e.g. those a worker thread received from the host. */
  static fromBanks(descriptors: readonly (BankOptions | BankDescriptor)[]): GuestMemory {
    const memory = new GuestMemory();
    for (const d of descriptors) {
      memory.addBank({ ...d, buffer: d.buffer ?? undefined });
    }
    return memory;
  }

  addBank(options: BankOptions): MemoryBank {
    const bank = new MemoryBank(options);
    const at = this.insertionIndex(bank.gpa);
    const before = this.banks[at - 1];
    const after = this.banks[at];
    const clash =
      before && before.end > bank.gpa ? before : after && after.gpa < bank.end ? after : undefined;
    if (clash) {
      throw new VmmError(
        'EEXIST',
        `bank ${hex(bank.gpa)}-${hex(bank.end - 1)} overlaps the ${clash.kind} bank ${hex(clash.gpa)}-${hex(clash.end - 1)}`,
        { gpa: bank.gpa, size: bank.size, existing: clash.gpa },
      );
    }
    this.banks.splice(at, 0, bank);
    this.emit('bankAdded', bank);
    return bank;
  }

  /** Removes the bank that starts at `gpa`. */
  removeBank(gpa: number): MemoryBank {
    const index = this.banks.findIndex((b) => b.gpa === gpa);
    if (index < 0) {
      const starts = this.banks.map((b) => hex(b.gpa)).join(', ') || 'none';
      throw new VmmError('ENOENT', `no bank starts at ${hex(gpa)} (banks start at: ${starts})`, { gpa });
    }
    const [bank] = this.banks.splice(index, 1);
    if (this.last === bank) this.last = null;
    this.emit('bankRemoved', bank!);
    return bank!;
  }

  /**
   * Visits banks of the given kinds in address order; stops early when `fn` returns `true`
   * (kvmtool's `kvm__for_each_mem_bank`). Returns whether a visit stopped the walk.
   */
  forEachBank(kinds: BankKind | readonly BankKind[] | 'all', fn: (bank: MemoryBank) => unknown): boolean {
    const wanted = kinds === 'all' ? null : typeof kinds === 'string' ? [kinds] : kinds;
    for (const bank of [...this.banks]) {
      if (wanted && !wanted.includes(bank.kind)) continue;
      if (fn(bank) === true) return true;
    }
    return false;
  }

  /** The banks, in address order. */
  get bankList(): readonly MemoryBank[] {
    return this.banks;
  }

  /** Descriptors of every bank, to rebuild the same memory in another thread. */
  describe(): BankDescriptor[] {
    return this.banks.map((b) => b.describe());
  }

  /** The bank containing `gpa`, of any kind, or `undefined` for a gap. */
  findBank(gpa: number): MemoryBank | undefined {
    const last = this.last;
    if (last !== null && gpa >= last.gpa && gpa < last.end) return last;
    const banks = this.banks;
    let lo = 0;
    let hi = banks.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const b = banks[mid]!;
      if (gpa < b.gpa) hi = mid - 1;
      else if (gpa >= b.end) lo = mid + 1;
      else return b;
    }
    return undefined;
  }

  /**
   * The RAM bank that holds all of `[gpa, gpa + length)`, or `null` when the range is not in a
   * single RAM bank (a gap, a non-RAM bank, a read-only bank for a write, or a range spanning
   * banks). Hot paths use it to index `bank.view` directly after one check.
   */
  ramBank(gpa: number, length: number, access: MemoryAccess = 'read'): MemoryBank | null {
    // A fractional address or length would index a truncated offset, and a negative length
    // would pass the bounds test below: refuse both, so every accessor reports them as 'range'.
    if (!Number.isInteger(gpa) || !Number.isInteger(length) || length < 0) return null;
    const last = this.last;
    if (
      last !== null &&
      gpa >= last.gpa &&
      gpa + length <= last.end &&
      (access === 'read' || !last.readOnly)
    ) {
      return last;
    }
    const bank = this.findBank(gpa);
    if (bank === undefined || bank.kind !== 'ram' || gpa + length > bank.end) return null;
    if (access === 'write' && bank.readOnly) return null;
    this.last = bank;
    return bank;
  }

  /** Whether the whole range is RAM that allows `access` (adjacent RAM banks count as one range). */
  isAccessible(gpa: number, length: number, access: MemoryAccess = 'read'): boolean {
    return this.accessFault(gpa, length, access) === null;
  }

  /** Why `[gpa, gpa + length)` cannot be accessed, or `null` when it can. */
  accessFault(
    gpa: number,
    length: number,
    access: MemoryAccess = 'read',
  ): { reason: AccessFault; at: number } | null {
    if (
      !Number.isSafeInteger(gpa) ||
      gpa < 0 ||
      !Number.isSafeInteger(length) ||
      length < 0 ||
      gpa + length > 2 ** 53
    ) {
      return { reason: 'range', at: gpa };
    }
    if (this.ramBank(gpa, length, access) !== null) return null;
    let at = gpa;
    const end = gpa + length;
    while (at < end) {
      const bank = this.findBank(at);
      if (bank === undefined) return { reason: 'gap', at };
      if (bank.kind !== 'ram') return { reason: bank.kind, at };
      if (access === 'write' && bank.readOnly) return { reason: 'read-only', at };
      at = bank.end;
    }
    return null;
  }

  /** Calls `fn` for each bank-contiguous piece of a checked range; throws EFAULT first if any byte is refused. */
  private pieces(
    gpa: number,
    length: number,
    access: MemoryAccess,
    fn: (bank: MemoryBank, offset: number, len: number, done: number) => void,
  ): void {
    const fault = this.accessFault(gpa, length, access);
    if (fault !== null) throw accessError(gpa, length, access, fault);
    let done = 0;
    while (done < length) {
      const at = gpa + done;
      const bank = this.findBank(at)!;
      const len = Math.min(length - done, bank.end - at);
      fn(bank, at - bank.gpa, len, done);
      done += len;
    }
  }

  /** Copies `length` bytes out of guest memory. */
  read(gpa: number, length: number): Uint8Array {
    const bank = this.ramBank(gpa, length);
    if (bank !== null) return bank.bytes.slice(gpa - bank.gpa, gpa - bank.gpa + length);
    // Checked before the copy is allocated: a bad length is an EFAULT, not a RangeError.
    const fault = this.accessFault(gpa, length, 'read');
    if (fault !== null) throw accessError(gpa, length, 'read', fault);
    const out = new Uint8Array(length);
    this.pieces(gpa, length, 'read', (b, off, len, done) => out.set(b.bytes.subarray(off, off + len), done));
    return out;
  }

  /** Copies guest memory into `target` (no allocation). */
  readInto(gpa: number, target: Uint8Array): void {
    const length = target.length;
    const bank = this.ramBank(gpa, length);
    if (bank !== null) {
      target.set(bank.bytes.subarray(gpa - bank.gpa, gpa - bank.gpa + length));
      return;
    }
    this.pieces(gpa, length, 'read', (b, off, len, done) =>
      target.set(b.bytes.subarray(off, off + len), done),
    );
  }

  write(gpa: number, bytes: Uint8Array): void {
    const length = bytes.length;
    const bank = this.ramBank(gpa, length, 'write');
    if (bank !== null) {
      bank.bytes.set(bytes, gpa - bank.gpa);
      return;
    }
    this.pieces(gpa, length, 'write', (b, off, len, done) =>
      b.bytes.set(bytes.subarray(done, done + len), off),
    );
  }

  /** Fills a range with one byte value. */
  fill(gpa: number, length: number, value = 0): void {
    const bank = this.ramBank(gpa, length, 'write');
    if (bank !== null) {
      fillBytes(bank.bytes, value, gpa - bank.gpa, gpa - bank.gpa + length);
      return;
    }
    this.pieces(gpa, length, 'write', (b, off, len) => fillBytes(b.bytes, value, off, off + len));
  }

  /**
   * A zero-copy view of guest memory. The range must lie in one RAM bank, because a view
   * cannot span two buffers; use `read` for ranges that cross banks.
   */
  view(gpa: number, length: number, access: MemoryAccess = 'read'): Uint8Array {
    const bank = this.ramBank(gpa, length, access);
    if (bank === null) {
      const fault = this.accessFault(gpa, length, access);
      if (fault !== null) throw accessError(gpa, length, access, fault);
      throw new VmmError(
        'EFAULT',
        `${hex(gpa)}+${length} spans two banks; a zero-copy view must lie in one (use read())`,
        {
          gpa,
          length,
          reason: 'range',
        },
      );
    }
    return bank.bytes.subarray(gpa - bank.gpa, gpa - bank.gpa + length);
  }

  readU8(gpa: number): number {
    const bank = this.ramBank(gpa, 1);
    if (bank !== null) return bank.bytes[gpa - bank.gpa]!;
    return this.slowRead(gpa, 1).getUint8(0);
  }

  readU16(gpa: number): number {
    const bank = this.ramBank(gpa, 2);
    if (bank !== null) return bank.view.getUint16(gpa - bank.gpa, true);
    return this.slowRead(gpa, 2).getUint16(0, true);
  }

  readU32(gpa: number): number {
    const bank = this.ramBank(gpa, 4);
    if (bank !== null) return bank.view.getUint32(gpa - bank.gpa, true);
    return this.slowRead(gpa, 4).getUint32(0, true);
  }

  readU64(gpa: number): bigint {
    const bank = this.ramBank(gpa, 8);
    if (bank !== null) return bank.view.getBigUint64(gpa - bank.gpa, true);
    return this.slowRead(gpa, 8).getBigUint64(0, true);
  }

  /** Reads a 64-bit word as two 32-bit halves into `out[index]` (low) and `out[index + 1]` (high); no BigInt. */
  readU64Pair(gpa: number, out: Uint32Array | number[], index = 0): void {
    const bank = this.ramBank(gpa, 8);
    const view = bank !== null ? bank.view : this.slowRead(gpa, 8);
    const off = bank !== null ? gpa - bank.gpa : 0;
    out[index] = view.getUint32(off, true);
    out[index + 1] = view.getUint32(off + 4, true);
  }

  writeU8(gpa: number, value: number): void {
    const bank = this.ramBank(gpa, 1, 'write');
    if (bank !== null) bank.bytes[gpa - bank.gpa] = value;
    else this.slowWrite(gpa, 1, (v) => v.setUint8(0, value));
  }

  writeU16(gpa: number, value: number): void {
    const bank = this.ramBank(gpa, 2, 'write');
    if (bank !== null) bank.view.setUint16(gpa - bank.gpa, value, true);
    else this.slowWrite(gpa, 2, (v) => v.setUint16(0, value, true));
  }

  writeU32(gpa: number, value: number): void {
    const bank = this.ramBank(gpa, 4, 'write');
    if (bank !== null) bank.view.setUint32(gpa - bank.gpa, value >>> 0, true);
    else this.slowWrite(gpa, 4, (v) => v.setUint32(0, value >>> 0, true));
  }

  writeU64(gpa: number, value: bigint): void {
    const bank = this.ramBank(gpa, 8, 'write');
    if (bank !== null) bank.view.setBigUint64(gpa - bank.gpa, BigInt.asUintN(64, value), true);
    else this.slowWrite(gpa, 8, (v) => v.setBigUint64(0, BigInt.asUintN(64, value), true));
  }

  /**
   * Writes a 64-bit word from its 32-bit halves, the high half first: descriptors keep their
   * valid bit in the low half, so a walker never sees a valid bit beside a stale address. To
   * clear a descriptor, clear the low half first (`writeU32`).
   */
  writeU64Pair(gpa: number, lo: number, hi: number): void {
    const bank = this.ramBank(gpa, 8, 'write');
    if (bank !== null) {
      bank.view.setUint32(gpa - bank.gpa + 4, hi >>> 0, true);
      bank.view.setUint32(gpa - bank.gpa, lo >>> 0, true);
    } else {
      this.slowWrite(gpa, 8, (v) => {
        v.setUint32(0, lo >>> 0, true);
        v.setUint32(4, hi >>> 0, true);
      });
    }
  }

  private insertionIndex(gpa: number): number {
    let lo = 0;
    let hi = this.banks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.banks[mid]!.gpa < gpa) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** A small access that straddles two RAM banks, or one that is refused (throws). */
  private slowRead(gpa: number, length: number): DataView {
    const scratch = this.scratch;
    this.pieces(gpa, length, 'read', (b, off, len, done) => {
      for (let i = 0; i < len; i++) scratch.setUint8(done + i, b.bytes[off + i]!);
    });
    return scratch;
  }

  private slowWrite(gpa: number, length: number, fill: (v: DataView) => void): void {
    const scratch = this.scratch;
    fill(scratch);
    this.pieces(gpa, length, 'write', (b, off, len, done) => {
      for (let i = 0; i < len; i++) b.bytes[off + i] = scratch.getUint8(done + i);
    });
  }
}

function accessError(
  gpa: number,
  length: number,
  access: MemoryAccess,
  fault: { reason: AccessFault; at: number },
): VmmError {
  const what = {
    gap: 'no memory bank is there',
    device: 'it is a device bank, not RAM',
    reserved: 'it is a reserved bank',
    'read-only': 'the bank is read-only',
    range: 'the address or length is not a non-negative safe integer range',
  }[fault.reason];
  return new VmmError(
    'EFAULT',
    `guest ${access} of ${length} bytes at ${hex(gpa)} refused at ${hex(fault.at)}: ${what}`,
    {
      gpa,
      length,
      access,
      at: fault.at,
      reason: fault.reason,
    },
  );
}
