/**
 * Command-queue entries: 16 bytes, two little-endian dwords (IHI 0070 §4).
 *
 * Field positions from Linux arm-smmu-v3.h (`CMDQ_*`) and `arm_smmu_cmdq_build_cmd`; QEMU's
 * smmuv3-internal.h `CMD_*` extractors agree bit for bit. The TLBI address spans VA[63:12],
 * so it is a bigint here (a cold codec); the model decodes it from 32-bit halves.
 */
import { ErrorCode, VmmError } from '@vmmkit/core';
import { getField, getFlag, readWords, setField, setFlag, writeWords } from './bits.js';

export const CMD_SIZE = 16;

export const CmdOpcode = {
  PREFETCH_CFG: 0x01,
  CFGI_STE: 0x03,
  CFGI_STE_RANGE: 0x04,
  CFGI_CD: 0x05,
  CFGI_CD_ALL: 0x06,
  TLBI_NH_ALL: 0x10,
  TLBI_NH_ASID: 0x11,
  TLBI_NH_VA: 0x12,
  TLBI_NH_VAA: 0x13,
  TLBI_NSNH_ALL: 0x30,
  CMD_SYNC: 0x46,
} as const;

/** CMD_SYNC completion signal (dword 0 [13:12]). */
export const SyncCs = { NONE: 0, IRQ: 1, SEV: 2 } as const;

/** TLBI range fields (used when the SMMU has IDR3.RIL); TG = 0 means a single, non-range address. */
export interface TlbiRange {
  /** NUM [16:12]: the range covers (NUM + 1) × 2^SCALE pages. */
  num: number;
  /** SCALE [24:20]. */
  scale: number;
  /** TG [11:10] of dword 1: 1 = 4K, 2 = 16K, 3 = 64K; 0 = not a range. */
  tg: number;
  /** TTL [9:8] of dword 1: level of the leaf entries (0 = any). */
  ttl: number;
}

export type CmdqCommand =
  | { op: 'PREFETCH_CFG'; sid: number; ssec?: boolean }
  | { op: 'CFGI_STE'; sid: number; leaf: boolean; ssec?: boolean }
  | { op: 'CFGI_STE_RANGE'; sid: number; range: number; ssec?: boolean }
  | { op: 'CFGI_CD'; sid: number; ssid: number; leaf: boolean; ssec?: boolean }
  | { op: 'CFGI_CD_ALL'; sid: number; ssec?: boolean }
  | { op: 'TLBI_NH_ALL'; vmid: number }
  | { op: 'TLBI_NH_ASID'; vmid: number; asid: number }
  | ({ op: 'TLBI_NH_VA'; vmid: number; asid: number; address: bigint; leaf: boolean } & TlbiRange)
  | ({ op: 'TLBI_NH_VAA'; vmid: number; address: bigint; leaf: boolean } & TlbiRange)
  | { op: 'TLBI_NSNH_ALL' }
  | { op: 'CMD_SYNC'; cs: number; msh: number; msiAttr: number; msiData: number; msiAddress: number };

/** A command whose opcode this codec does not know; kept whole. */
export interface UnknownCommand {
  op: 'UNKNOWN';
  opcode: number;
  dword0: bigint;
  dword1: bigint;
}

const ADDR_MASK = 0xffff_ffff_ffff_f000n;

function setAddress(w: Uint32Array, address: bigint): void {
  if (address < 0n || address > 0xffff_ffff_ffff_ffffn || (address & ~ADDR_MASK) !== 0n) {
    throw new VmmError(ErrorCode.ERANGE, `TLBI address ${address} must be a 64-bit value aligned to 4 KiB`);
  }
  w[2] = (w[2]! | Number(address & 0xffff_f000n)) >>> 0;
  w[3] = Number(address >> 32n);
}

function setRange(w: Uint32Array, cmd: TlbiRange & { leaf: boolean }): void {
  setField(w, 0, 12, 5, cmd.num, 'num');
  setField(w, 0, 20, 5, cmd.scale, 'scale');
  setFlag(w, 1, 0, cmd.leaf);
  setField(w, 1, 8, 2, cmd.ttl, 'ttl');
  setField(w, 1, 10, 2, cmd.tg, 'tg');
}

/** Encodes one command into 16 bytes (into `out` when given). */
export function encodeCommand(cmd: CmdqCommand, out?: Uint8Array): Uint8Array {
  const w = new Uint32Array(4);
  w[0] = CmdOpcode[cmd.op];
  switch (cmd.op) {
    case 'PREFETCH_CFG':
    case 'CFGI_CD_ALL':
      setFlag(w, 0, 10, cmd.ssec);
      setField(w, 0, 32, 32, cmd.sid, 'sid');
      break;
    case 'CFGI_STE':
      setFlag(w, 0, 10, cmd.ssec);
      setField(w, 0, 32, 32, cmd.sid, 'sid');
      setFlag(w, 1, 0, cmd.leaf);
      break;
    case 'CFGI_STE_RANGE':
      setFlag(w, 0, 10, cmd.ssec);
      setField(w, 0, 32, 32, cmd.sid, 'sid');
      setField(w, 1, 0, 5, cmd.range, 'range');
      break;
    case 'CFGI_CD':
      setFlag(w, 0, 10, cmd.ssec);
      setField(w, 0, 12, 20, cmd.ssid, 'ssid');
      setField(w, 0, 32, 32, cmd.sid, 'sid');
      setFlag(w, 1, 0, cmd.leaf);
      break;
    case 'TLBI_NH_ALL':
      setField(w, 0, 32, 16, cmd.vmid, 'vmid');
      break;
    case 'TLBI_NH_ASID':
      setField(w, 0, 32, 16, cmd.vmid, 'vmid');
      setField(w, 0, 48, 16, cmd.asid, 'asid');
      break;
    case 'TLBI_NH_VA':
      setField(w, 0, 48, 16, cmd.asid, 'asid');
      setField(w, 0, 32, 16, cmd.vmid, 'vmid');
      setRange(w, cmd);
      setAddress(w, cmd.address);
      break;
    case 'TLBI_NH_VAA':
      setField(w, 0, 32, 16, cmd.vmid, 'vmid');
      setRange(w, cmd);
      setAddress(w, cmd.address);
      break;
    case 'TLBI_NSNH_ALL':
      break;
    case 'CMD_SYNC':
      setField(w, 0, 12, 2, cmd.cs, 'cs');
      setField(w, 0, 22, 2, cmd.msh, 'msh');
      setField(w, 0, 24, 4, cmd.msiAttr, 'msiAttr');
      setField(w, 0, 32, 32, cmd.msiData, 'msiData');
      if (cmd.msiAddress % 4 !== 0) {
        throw new VmmError(ErrorCode.ERANGE, `msiAddress ${cmd.msiAddress} must be 4-byte aligned`);
      }
      setField(w, 1, 2, 50, cmd.msiAddress / 4, 'msiAddress');
      break;
  }
  return writeWords(w, out, 'a command');
}

function range(w: Uint32Array): TlbiRange {
  return {
    num: getField(w, 0, 12, 5),
    scale: getField(w, 0, 20, 5),
    tg: getField(w, 1, 10, 2),
    ttl: getField(w, 1, 8, 2),
  };
}

function address(w: Uint32Array): bigint {
  return (BigInt(w[3]!) << 32n) | BigInt((w[2]! & 0xffff_f000) >>> 0);
}

/** Decodes the command at `bytes[offset..]`; fields outside those named are not kept. */
export function decodeCommand(bytes: Uint8Array, offset = 0): CmdqCommand | UnknownCommand {
  const w = readWords(bytes, 2, offset, 'a command');
  const opcode = w[0]! & 0xff;
  const sid = w[1]!;
  switch (opcode) {
    case CmdOpcode.PREFETCH_CFG:
      return { op: 'PREFETCH_CFG', sid, ssec: getFlag(w, 0, 10) };
    case CmdOpcode.CFGI_STE:
      return { op: 'CFGI_STE', sid, leaf: getFlag(w, 1, 0), ssec: getFlag(w, 0, 10) };
    case CmdOpcode.CFGI_STE_RANGE:
      return { op: 'CFGI_STE_RANGE', sid, range: getField(w, 1, 0, 5), ssec: getFlag(w, 0, 10) };
    case CmdOpcode.CFGI_CD:
      return {
        op: 'CFGI_CD',
        sid,
        ssid: getField(w, 0, 12, 20),
        leaf: getFlag(w, 1, 0),
        ssec: getFlag(w, 0, 10),
      };
    case CmdOpcode.CFGI_CD_ALL:
      return { op: 'CFGI_CD_ALL', sid, ssec: getFlag(w, 0, 10) };
    case CmdOpcode.TLBI_NH_ALL:
      return { op: 'TLBI_NH_ALL', vmid: getField(w, 0, 32, 16) };
    case CmdOpcode.TLBI_NH_ASID:
      return { op: 'TLBI_NH_ASID', vmid: getField(w, 0, 32, 16), asid: getField(w, 0, 48, 16) };
    case CmdOpcode.TLBI_NH_VA:
      return {
        op: 'TLBI_NH_VA',
        vmid: getField(w, 0, 32, 16),
        asid: getField(w, 0, 48, 16),
        address: address(w),
        leaf: getFlag(w, 1, 0),
        ...range(w),
      };
    case CmdOpcode.TLBI_NH_VAA:
      return {
        op: 'TLBI_NH_VAA',
        vmid: getField(w, 0, 32, 16),
        address: address(w),
        leaf: getFlag(w, 1, 0),
        ...range(w),
      };
    case CmdOpcode.TLBI_NSNH_ALL:
      return { op: 'TLBI_NSNH_ALL' };
    case CmdOpcode.CMD_SYNC:
      return {
        op: 'CMD_SYNC',
        cs: getField(w, 0, 12, 2),
        msh: getField(w, 0, 22, 2),
        msiAttr: getField(w, 0, 24, 4),
        msiData: sid,
        msiAddress: getField(w, 1, 2, 50) * 4,
      };
    default:
      return {
        op: 'UNKNOWN',
        opcode,
        dword0: (BigInt(w[1]!) << 32n) | BigInt(w[0]!),
        dword1: (BigInt(w[3]!) << 32n) | BigInt(w[2]!),
      };
  }
}
