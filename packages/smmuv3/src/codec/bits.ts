/**
 * 64-bit little-endian dwords held as two unsigned 32-bit halves, and bit-field access on them.
 *
 * SMMUv3 structures are arrays of little-endian dwords (IHI 0070 §5). The codecs keep every
 * field that fits in 53 bits as a plain number so callers never need BigInt for addresses.
 */
import { ErrorCode, VmmError } from '@vmmkit/core';

const TWO_POW_32 = 0x1_0000_0000;

/** Mutable dword array: `words[2n]` = dword n bits [31:0], `words[2n+1]` = bits [63:32]. */
export type DwordWords = Uint32Array;

function lowMask(width: number): number {
  return width >= 32 ? 0xffff_ffff : (1 << width) - 1;
}

/**
 * Extracts bits [pos+width-1:pos] of dword `dw` as a number; `width` ≤ 53 and the field must
 * not leave the dword.
 */
export function getField(words: DwordWords, dw: number, pos: number, width: number): number {
  const lo = words[2 * dw]!;
  const hi = words[2 * dw + 1]!;
  if (pos >= 32) return ((hi >>> (pos - 32)) & lowMask(width)) >>> 0;
  if (pos + width <= 32) return ((lo >>> pos) & lowMask(width)) >>> 0;
  const lowBits = 32 - pos;
  const lowPart = lo >>> pos;
  const highPart = (hi & lowMask(width - lowBits)) >>> 0;
  return highPart * 2 ** lowBits + lowPart;
}

/** Extracts one bit as a boolean. */
export function getFlag(words: DwordWords, dw: number, bit: number): boolean {
  return getField(words, dw, bit, 1) === 1;
}

/**
 * Stores `value` into bits [pos+width-1:pos] of dword `dw` (the bits must be clear before).
 * A value that does not fit its field is a caller error: nothing is written.
 */
export function setField(
  words: DwordWords,
  dw: number,
  pos: number,
  width: number,
  value: number,
  name: string,
): void {
  if (!Number.isSafeInteger(value) || value < 0 || value >= 2 ** width) {
    throw fieldRangeError(name, value, width);
  }
  if (pos >= 32) {
    words[2 * dw + 1] = (words[2 * dw + 1]! | (value << (pos - 32))) >>> 0;
    return;
  }
  if (pos + width <= 32) {
    words[2 * dw] = (words[2 * dw]! | (value << pos)) >>> 0;
    return;
  }
  const lowBits = 32 - pos;
  const lowPart = value % 2 ** lowBits;
  const highPart = Math.floor(value / 2 ** lowBits);
  words[2 * dw] = (words[2 * dw]! | (lowPart << pos)) >>> 0;
  words[2 * dw + 1] = (words[2 * dw + 1]! | highPart) >>> 0;
}

/** The error of a field value that does not fit its `width` bits. */
export function fieldRangeError(name: string, value: number, width: number): VmmError {
  return new VmmError(
    ErrorCode.ERANGE,
    `${name} = ${value} does not fit in ${width} bit(s); pass an integer in [0, 2^${width})`,
    { field: name, value, width },
  );
}

/** Stores a boolean as one bit. */
export function setFlag(words: DwordWords, dw: number, bit: number, value: boolean | undefined): void {
  if (value) setField(words, dw, bit, 1, 1, 'flag');
}

/** A whole dword as an unsigned bigint (cold codecs only). */
export function getDword(words: DwordWords, dw: number): bigint {
  return (BigInt(words[2 * dw + 1]!) << 32n) | BigInt(words[2 * dw]!);
}

/** Stores a whole dword from an unsigned 64-bit bigint. */
export function setDword(words: DwordWords, dw: number, value: bigint, name: string): void {
  // Most dwords of a CD or STE are zero; BigInt arithmetic allocates, so skip it for them.
  if (value === 0n) {
    words[2 * dw] = 0;
    words[2 * dw + 1] = 0;
    return;
  }
  if (value < 0n || value > 0xffff_ffff_ffff_ffffn) {
    throw new VmmError(ErrorCode.ERANGE, `${name} = ${value} is not an unsigned 64-bit value`, {
      field: name,
    });
  }
  words[2 * dw] = Number(value & 0xffff_ffffn);
  words[2 * dw + 1] = Number(value >> 32n);
}

/** Reads `dwords` little-endian dwords from `bytes[offset..]` into 32-bit halves. */
export function readWords(bytes: Uint8Array, dwords: number, offset = 0, what = 'structure'): DwordWords {
  const length = dwords * 8;
  if (!Number.isSafeInteger(offset) || offset < 0 || bytes.length - offset < length) {
    throw new VmmError(
      ErrorCode.EINVAL,
      `${what} needs ${length} bytes at offset ${offset}, the buffer holds ${bytes.length}`,
      { length: bytes.length, offset, need: length },
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, length);
  const words = new Uint32Array(dwords * 2);
  for (let i = 0; i < dwords * 2; i++) words[i] = view.getUint32(i * 4, true);
  return words;
}

/** Writes 32-bit halves back as little-endian dwords into `out` (allocated when absent). */
export function writeWords(words: DwordWords, out?: Uint8Array, what = 'structure'): Uint8Array {
  const length = words.length * 4;
  const target = out ?? new Uint8Array(length);
  if (target.length < length) {
    throw new VmmError(ErrorCode.EINVAL, `${what} needs a ${length}-byte buffer, got ${target.length}`, {
      length: target.length,
      need: length,
    });
  }
  for (let i = 0; i < words.length; i++) {
    const word = words[i]!;
    target[4 * i] = word & 0xff;
    target[4 * i + 1] = (word >>> 8) & 0xff;
    target[4 * i + 2] = (word >>> 16) & 0xff;
    target[4 * i + 3] = word >>> 24;
  }
  return target;
}

/** Splits a safe non-negative integer into 32-bit halves (no BigInt). */
export function splitU64(value: number): { lo: number; hi: number } {
  return { lo: (value % TWO_POW_32) >>> 0, hi: Math.floor(value / TWO_POW_32) >>> 0 };
}
