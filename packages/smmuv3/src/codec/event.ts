/**
 * Event-queue records: 32 bytes, four little-endian dwords (IHI 0070 §7.3).
 *
 * Layout from Linux arm-smmu-v3.h (`EVTQ_*`) and QEMU's `EVT_SET_*`. The fetch address of
 * F_STE_FETCH, F_CD_FETCH and F_WALK_EABT is written in dword 3 [51:3] for all three (the
 * architecture's FetchAddr position; QEMU puts the F_CD_FETCH one in dword 2, reference §10.5).
 */
import { ErrorCode, VmmError } from '@vmmkit/core';
import { getField, getFlag, readWords, setField, setFlag, writeWords } from './bits.js';

export const EVENT_SIZE = 32;

export const EventType = {
  F_UUT: 0x01,
  C_BAD_STREAMID: 0x02,
  F_STE_FETCH: 0x03,
  C_BAD_STE: 0x04,
  F_BAD_ATS_TREQ: 0x05,
  F_STREAM_DISABLED: 0x06,
  F_TRANSL_FORBIDDEN: 0x07,
  C_BAD_SUBSTREAMID: 0x08,
  F_CD_FETCH: 0x09,
  C_BAD_CD: 0x0a,
  F_WALK_EABT: 0x0b,
  F_TRANSLATION: 0x10,
  F_ADDR_SIZE: 0x11,
  F_ACCESS: 0x12,
  F_PERMISSION: 0x13,
  F_TLB_CONFLICT: 0x20,
  F_CFG_CONFLICT: 0x21,
  E_PAGE_REQUEST: 0x24,
} as const;
export type EventTypeName = keyof typeof EventType;

const NAMES = new Map<number, string>(Object.entries(EventType).map(([name, id]) => [id, name]));

/** The architectural name of an event ID (`UNKNOWN_0x..` for IDs the architecture does not define here). */
export function eventName(type: number): string {
  return NAMES.get(type) ?? `UNKNOWN_0x${type.toString(16)}`;
}

/** CLASS field of translation-class events (dword 1 [41:40]). */
export const EventClass = { CD: 0, TT: 1, IN: 2 } as const;

/** One event record. Addresses are numbers (InputAddr of this model's IOVAs is < 2^53). */
export interface SmmuEvent {
  /** EventID [7:0] of dword 0. */
  type: number;
  /** Architectural name of `type` (not stored in the record). */
  name: string;
  /** StreamID, dword 0 [63:32]. */
  sid: number;
  /** SubstreamID valid, dword 0 [11]. */
  ssv: boolean;
  /** SubstreamID, dword 0 [31:12] (meaningful when `ssv`). */
  ssid: number;
  /** STAG, dword 1 [15:0]. */
  stag: number;
  /** Stall, dword 1 [31]. */
  stall: boolean;
  /** PnU (privileged), dword 1 [33]. */
  privileged: boolean;
  /** InD (instruction), dword 1 [34]. */
  instruction: boolean;
  /** RnW (1 = read), dword 1 [35]. Only translation-class events and F_WALK_EABT carry it. */
  read: boolean;
  /** S2, dword 1 [39]: the fault is from stage 2. */
  s2: boolean;
  /** CLASS, dword 1 [41:40], see `EventClass`. */
  eventClass: number;
  /** InputAddr, dword 2: the faulting IOVA. */
  address: number;
  /**
   * Dword 3 [51:3]: the fetch address (F_STE_FETCH, F_CD_FETCH, F_WALK_EABT) or the IPA of S2
   * faults. IHI 0070 §7.3 defines FetchAddr[55:3]; bits above 51 are not kept (52-bit OAS).
   */
  fetchAddress: number;
}

/** An event with every field at its default; pass overrides. */
export function makeEvent(type: number, fields: Partial<Omit<SmmuEvent, 'type' | 'name'>> = {}): SmmuEvent {
  return {
    type,
    name: eventName(type),
    sid: 0,
    ssv: false,
    ssid: 0,
    stag: 0,
    stall: false,
    privileged: false,
    instruction: false,
    read: false,
    s2: false,
    eventClass: 0,
    address: 0,
    fetchAddress: 0,
    ...fields,
  };
}

export function encodeEvent(event: SmmuEvent, out?: Uint8Array): Uint8Array {
  const w = new Uint32Array(8);
  setField(w, 0, 0, 8, event.type, 'type');
  setFlag(w, 0, 11, event.ssv);
  setField(w, 0, 12, 20, event.ssid, 'ssid');
  setField(w, 0, 32, 32, event.sid, 'sid');
  setField(w, 1, 0, 16, event.stag, 'stag');
  setFlag(w, 1, 31, event.stall);
  setFlag(w, 1, 33, event.privileged);
  setFlag(w, 1, 34, event.instruction);
  setFlag(w, 1, 35, event.read);
  setFlag(w, 1, 39, event.s2);
  setField(w, 1, 40, 2, event.eventClass, 'eventClass');
  if (!Number.isSafeInteger(event.address) || event.address < 0) {
    throw new VmmError(
      ErrorCode.ERANGE,
      `event address ${event.address} must be a safe non-negative integer`,
    );
  }
  setField(w, 2, 0, 32, event.address % 2 ** 32, 'address');
  setField(w, 2, 32, 32, Math.floor(event.address / 2 ** 32), 'address');
  if (event.fetchAddress % 8 !== 0) {
    throw new VmmError(
      ErrorCode.ERANGE,
      `fetchAddress ${event.fetchAddress} must be 8-byte aligned ([51:3])`,
    );
  }
  setField(w, 3, 3, 49, event.fetchAddress / 8, 'fetchAddress');
  return writeWords(w, out, 'an event record');
}

/**
 * Decodes the record at `bytes[offset..]`. Reserved bits are not kept; an InputAddr of 2^53 or
 * more cannot be a number and throws `VmmError(ERANGE)` (this model never produces one).
 */
export function decodeEvent(bytes: Uint8Array, offset = 0): SmmuEvent {
  const w = readWords(bytes, 4, offset, 'an event record');
  const addressHi = w[5]!;
  if (addressHi >= 2 ** 21) {
    throw new VmmError(ErrorCode.ERANGE, 'event InputAddr is 2^53 or more and cannot be held as a number');
  }
  const type = getField(w, 0, 0, 8);
  return {
    type,
    name: eventName(type),
    sid: w[1]!,
    ssv: getFlag(w, 0, 11),
    ssid: getField(w, 0, 12, 20),
    stag: getField(w, 1, 0, 16),
    stall: getFlag(w, 1, 31),
    privileged: getFlag(w, 1, 33),
    instruction: getFlag(w, 1, 34),
    read: getFlag(w, 1, 35),
    s2: getFlag(w, 1, 39),
    eventClass: getField(w, 1, 40, 2),
    address: addressHi * 2 ** 32 + w[4]!,
    fetchAddress: getField(w, 3, 3, 49) * 8,
  };
}
