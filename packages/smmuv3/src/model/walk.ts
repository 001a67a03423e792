/**
 * The VMSAv8-64 stage-1 walk over TT0 (Arm ARM D8, as an SMMUv3 performs it; QEMU
 * `smmu_ptw_64_s1` is the reference implementation it was checked against).
 *
 * Hot path: numbers and 32-bit halves only, no allocation. The result lands in a reusable
 * `WalkResult`; a `trace` array is filled only by `explain`.
 */
import type { GuestMemory, MemoryBank, TranslationStep } from '@vmmkit/core';
import { EventType } from '../codec/event.js';
import type { S1Context } from './context.js';

/** 2^n for n in 0..63, so the walk never calls Math.pow. */
export const POW2: Float64Array = Float64Array.from({ length: 64 }, (_, n) => 2 ** n);

export class WalkResult {
  /** 0 on success, else the event type of the fault. */
  fault = 0;
  /** Output address of the translated IOVA. */
  pa = 0;
  /** Permission bits: unprivileged read/write/exec = bits 0..2, privileged = bits 3..5. */
  perm = 0;
  /** log2 of the page or block size. */
  shift = 0;
  level = 0;
  /** nG was 0: the entry matches every ASID. */
  global = false;
  /** Descriptor address of a fetch abort (F_WALK_EABT). */
  fetchAddress = 0;
}

function traceLevel(
  trace: TranslationStep[],
  level: number,
  address: number,
  value: string,
  table: number,
  index: number,
): void {
  trace.push({ label: `L${level}`, address, value, fields: { table, index } });
}

function hex(lo: number, hi: number): string {
  return `0x${hi.toString(16).padStart(8, '0')}${lo.toString(16).padStart(8, '0')}`;
}

/** Unprivileged / privileged read, write, exec permission from a leaf and the table attributes above it. */
function leafPermissions(
  lo: number,
  hi: number,
  apTable: number,
  xnTable: number,
  pxnTable: number,
  ctx: S1Context,
) {
  // AP[1] (bit 6): EL0 access; AP[2] (bit 7): read-only. APTable[0] removes EL0, APTable[1] removes write.
  const ap1 = (lo >>> 6) & 1 & (~apTable & 1);
  const ap2 = ((lo >>> 7) & 1) | (apTable >>> 1);
  const pxn = ((hi >>> 21) & 1) | pxnTable;
  const uxn = ((hi >>> 22) & 1) | xnTable;
  const uWrite = ap1 & (ap2 ^ 1);
  const pWriteable = ap2 ^ 1;
  // PAN: privileged data accesses to EL0-accessible pages fault.
  const panBlocks = ctx.pan ? ap1 : 0;
  const pRead = panBlocks ^ 1;
  const pWrite = pWriteable & (panBlocks ^ 1);
  // WXN: writable implies execute-never. EL0-writable memory is never privileged-executable.
  const wxn = ctx.wxn ? 1 : 0;
  const uExec = (uxn ^ 1) & ((wxn & uWrite) ^ 1);
  const pExec = (pxn ^ 1) & (uWrite ^ 1) & ((wxn & pWriteable) ^ 1);
  return ap1 | (uWrite << 1) | (uExec << 2) | (pRead << 3) | (pWrite << 4) | (pExec << 5);
}

/**
 * Walks TT0 for `iova` and checks `accessCode` (0 read, 1 write, 2 exec, +3 privileged).
 * Returns the fault type (0 = translated). Bounded: at most four descriptor reads.
 */
export function walkStage1(
  memory: GuestMemory,
  ctx: S1Context,
  iova: number,
  accessCode: number,
  result: WalkResult,
  trace: TranslationStep[] | null,
): number {
  // Input outside TT0 (above 2^(64−T0SZ)), or TT0 disabled by EPD0: translation fault (level 0).
  // TT1 needs IOVA bit 55 set, which a safe-integer IOVA never has.
  if (ctx.epd0 || !(iova < ctx.inputLimit) || !(iova >= 0)) {
    result.fault = EventType.F_TRANSLATION;
    if (trace !== null) trace.push({ label: 'fault', value: 'IOVA outside TT0 (T0SZ) or EPD0 set' });
    return result.fault;
  }
  const stride = ctx.stride;
  const granuleMask = ~(POW2[ctx.granuleShift]! - 1);
  const strideMask = POW2[stride]! - 1;
  const strideSize = POW2[stride]!;
  let table = ctx.tableBase;
  let level = ctx.startLevel;
  // Index extraction with a division and an AND: `Math.floor(iova / div)` is an exact integer
  // below 2^53 and `& mask` keeps its low bits (mask < 2^31), so no floating-point modulo.
  let div = POW2[ctx.startShift]!;
  let mask = POW2[ctx.startIndexBits]! - 1;
  let apTable = 0;
  let xnTable = 0;
  let pxnTable = 0;
  // The bank of the previous descriptor, reused while the next one lies inside it. Safe to keep
  // for one walk only: a walk is synchronous, so no bank can be unplugged in the middle of it.
  let bank: MemoryBank | null = null;
  for (let step = 0; step < 4; step++) {
    const index = Math.floor(iova / div) & mask;
    const descAddress = table + index * 8;
    if (bank === null || descAddress < bank.gpa || descAddress + 8 > bank.end) {
      bank = memory.ramBank(descAddress, 8);
    }
    if (bank === null) {
      // A descriptor outside guest RAM: external abort on the walk.
      result.fetchAddress = descAddress;
      result.fault = EventType.F_WALK_EABT;
      if (trace !== null) traceLevel(trace, level, descAddress, 'not RAM', table, index);
      return result.fault;
    }
    const off = descAddress - bank.gpa;
    const view = bank.view;
    const lo = view.getUint32(off, true);
    const hi = view.getUint32(off + 4, true);
    if (trace !== null) traceLevel(trace, level, descAddress, hex(lo, hi), table, index);
    // Bit 0 clear: invalid descriptor.
    if ((lo & 1) === 0) {
      result.fault = EventType.F_TRANSLATION;
      return result.fault;
    }
    // Output/next-table address: bits [47:g] (plus PA[51:48] from [15:12] with 64K + 52-bit).
    let address = (hi & 0xffff) * 4294967296 + ((lo & granuleMask) >>> 0);
    if (ctx.lpa) address += ((lo >>> 12) & 0xf) * 281474976710656;
    if (level < 3 && (lo & 2) !== 0) {
      // Table descriptor; a next-level address beyond the output size is an address size fault.
      if (address >= ctx.outputLimit) {
        result.fault = EventType.F_ADDR_SIZE;
        return result.fault;
      }
      if (!ctx.had) {
        apTable |= (hi >>> 29) & 3;
        xnTable |= (hi >>> 28) & 1;
        pxnTable |= (hi >>> 27) & 1;
      }
      table = address;
      level++;
      div /= strideSize;
      mask = strideMask;
      continue;
    }
    // Level 3 with type 0b01 is reserved; a block above the levels that allow one is invalid.
    if (level === 3 ? (lo & 2) === 0 : level < ctx.minBlockLevel) {
      result.fault = EventType.F_TRANSLATION;
      return result.fault;
    }
    // `div` is now the page or block size; a block's output drops the bits below it.
    const out = level === 3 ? address : Math.floor(address / div) * div;
    // Fault priority (Arm ARM): address size, then access flag, then permission.
    if (out >= ctx.outputLimit) {
      result.fault = EventType.F_ADDR_SIZE;
      return result.fault;
    }
    if (((lo >>> 10) & 1) === 0 && !ctx.affd) {
      result.fault = EventType.F_ACCESS;
      return result.fault;
    }
    const perm = leafPermissions(lo, hi, apTable, xnTable, pxnTable, ctx);
    result.pa = out + (iova - Math.floor(iova / div) * div);
    result.perm = perm;
    result.shift = ctx.granuleShift + (3 - level) * stride;
    result.level = level;
    result.global = ((lo >>> 11) & 1) === 0;
    result.fault = ((perm >>> accessCode) & 1) === 0 ? EventType.F_PERMISSION : 0;
    return result.fault;
  }
  // Unreachable: level 3 always ends the loop; kept as a bound for hostile contexts.
  result.fault = EventType.F_TRANSLATION;
  return result.fault;
}
