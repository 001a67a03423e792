import { hex, VmmError } from '../errors.js';

/** What a bank of guest-physical address space is backed by (kvmtool's `kvm_mem_type`). */
export type BankKind = 'ram' | 'device' | 'reserved';

/** Granule every bank boundary is aligned to: the smallest page the guest or an IOMMU maps. */
export const BANK_ALIGN = 0x1000;

/** Guest-physical addresses are safe integers; keep a margin so `gpa + size` stays exact. */
export const MAX_GPA = 2 ** 52;

export interface BankOptions {
  /** Guest-physical base address, 4 KiB aligned. */
  gpa: number;
  /** Size in bytes, a non-zero multiple of 4 KiB. */
  size: number;
  kind?: BankKind;
  readOnly?: boolean;
  /** Backing store; a RAM bank without one gets a zeroed SharedArrayBuffer of `size` bytes. */
  buffer?: SharedArrayBuffer;
  /** Byte offset of the bank inside `buffer`. */
  bufferOffset?: number;
}

/** A plain description of a bank that can be posted to a worker thread (SharedArrayBuffers are shared, not copied). */
export interface BankDescriptor {
  gpa: number;
  size: number;
  kind: BankKind;
  readOnly: boolean;
  buffer: SharedArrayBuffer | null;
  bufferOffset: number;
}

/**
 * One contiguous range of guest-physical space (kvmtool's `kvm_mem_bank`).
 * Views are created once here so accessors never allocate per access.
 */
export class MemoryBank {
  readonly gpa: number;
  readonly size: number;
  /** First address past the bank. */
  readonly end: number;
  readonly kind: BankKind;
  readonly readOnly: boolean;
  readonly buffer: SharedArrayBuffer | null;
  readonly bufferOffset: number;
  /** Byte view of the bank (length 0 when the bank has no backing store). */
  readonly bytes: Uint8Array;
  /** Little-endian accessor over the same bytes. */
  readonly view: DataView;

  constructor(options: BankOptions) {
    const { gpa, size, kind = 'ram', readOnly = false, bufferOffset = 0 } = options;
    validateRange(gpa, size);
    if (kind !== 'ram' && kind !== 'device' && kind !== 'reserved') {
      throw new VmmError('EINVAL', `bank kind must be 'ram', 'device' or 'reserved', got ${String(kind)}`);
    }
    let buffer = options.buffer ?? null;
    if (buffer !== null) {
      if (!(buffer instanceof SharedArrayBuffer)) {
        throw new VmmError(
          'EINVAL',
          'a bank buffer must be a SharedArrayBuffer so guest threads and devices share it',
        );
      }
      if (
        !Number.isSafeInteger(bufferOffset) ||
        bufferOffset < 0 ||
        bufferOffset + size > buffer.byteLength
      ) {
        throw new VmmError(
          'ERANGE',
          `bank of ${hex(size)} bytes at offset ${bufferOffset} does not fit its buffer of ${buffer.byteLength} bytes`,
          { gpa, size, bufferOffset, bufferLength: buffer.byteLength },
        );
      }
    } else if (kind === 'ram') {
      buffer = new SharedArrayBuffer(size);
    }
    this.gpa = gpa;
    this.size = size;
    this.end = gpa + size;
    this.kind = kind;
    this.readOnly = readOnly;
    this.buffer = buffer;
    this.bufferOffset = buffer === null ? 0 : bufferOffset;
    this.bytes = buffer === null ? new Uint8Array(0) : new Uint8Array(buffer, this.bufferOffset, size);
    this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
  }

  contains(gpa: number, length = 1): boolean {
    return gpa >= this.gpa && gpa + length <= this.end;
  }

  describe(): BankDescriptor {
    return {
      gpa: this.gpa,
      size: this.size,
      kind: this.kind,
      readOnly: this.readOnly,
      buffer: this.buffer,
      bufferOffset: this.bufferOffset,
    };
  }
}

function validateRange(gpa: number, size: number): void {
  if (!Number.isSafeInteger(gpa) || gpa < 0 || gpa % BANK_ALIGN !== 0) {
    throw new VmmError('EINVAL', `bank address ${String(gpa)} must be a non-negative multiple of 4 KiB`, {
      gpa,
    });
  }
  if (!Number.isSafeInteger(size) || size <= 0 || size % BANK_ALIGN !== 0) {
    throw new VmmError('EINVAL', `bank size ${String(size)} must be a positive multiple of 4 KiB`, {
      gpa,
      size,
    });
  }
  if (gpa + size > MAX_GPA) {
    throw new VmmError('ERANGE', `bank ${hex(gpa)}+${hex(size)} ends above the 52-bit guest-physical limit`, {
      gpa,
      size,
    });
  }
}
