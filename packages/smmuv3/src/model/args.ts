/** Argument checks and small conversions of the Smmuv3 API (kept out of the model's hot file). */
import { ErrorCode, VmmError } from '@vmmkit/core';
import { AccessCode, type DmaAccessName } from './types.js';

/** Expands the 6-bit permission code for one privilege level to 1 read | 2 write | 4 exec. */
export function permBits(perm6: number, privileged: boolean): number {
  return privileged ? (perm6 >>> 3) & 7 : perm6 & 7;
}

export function wordsOf(bytes: Uint8Array, message: string): Uint32Array {
  if (!(bytes instanceof Uint8Array) || bytes.length !== 64) throw new VmmError(ErrorCode.EINVAL, message);
  const view = new DataView(bytes.buffer, bytes.byteOffset, 64);
  const words = new Uint32Array(16);
  for (let i = 0; i < 16; i++) words[i] = view.getUint32(i * 4, true);
  return words;
}

export function accessCodeOf(access: DmaAccessName, privileged: boolean): number {
  const base = access === 'read' ? 0 : access === 'write' ? 1 : access === 'exec' ? 2 : -1;
  if (base < 0) {
    throw new VmmError(ErrorCode.EINVAL, `access must be 'read', 'write' or 'exec', got ${String(access)}`);
  }
  return base + (privileged ? AccessCode.PRIVILEGED : 0);
}
