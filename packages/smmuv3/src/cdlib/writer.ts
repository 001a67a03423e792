/**
 * Updates one live Context Descriptor in the order the SMMU needs (Linux
 * `arm_smmu_write_ctx_desc` and the 6.9+ `arm_smmu_write_entry`).
 *
 * The SMMU reads each aligned 64-bit dword single-copy atomically but may fetch the dwords of a
 * CD at different times (IHI 0070 §3.21.3), and V lives in dword 0. So: the other dwords are
 * written while V=0 and made visible with a sync before V is set; a live CD changes without
 * going through V=0 only when the change is one 32-bit store (e.g. a new ASID); anything larger
 * breaks the CD (V=0, sync), rewrites it, and sets V again.
 */
import type { GuestMemory } from '@vmmkit/core';
import { CD_BYTES } from './layout.js';

/** CD dword 0 bit 31: V. */
const CD_V = 0x8000_0000;
const WORDS = CD_BYTES / 4;

/** What a write did, for callers that count syncs (Linux KUnit checks the same). */
export type CdWriteKind = 'unchanged' | 'install' | 'hitless' | 'breaking' | 'clear';

/**
 * Writes `target` (16 little-endian 32-bit words, V set in word 0) or clears the CD (`null`) at
 * `gpa`, calling `sync()` at every point the SMMU must observe the memory so far.
 */
export function writeCdWords(
  memory: GuestMemory,
  gpa: number,
  target: Uint32Array | null,
  sync: () => void,
): CdWriteKind {
  return writeCdWordsSynced(memory, gpa, target, callThunk, sync, 0);
}

function callThunk(sync: () => void): void {
  sync();
}

/**
 * `writeCdWords` with the sync given as a function and its arguments, `sync(cookie, ssid, true)`,
 * so a writer of many CDs builds no closure per write.
 */
export function writeCdWordsSynced<C>(
  memory: GuestMemory,
  gpa: number,
  target: Uint32Array | null,
  sync: (cookie: C, ssid: number, leaf: true) => void,
  cookie: C,
  ssid: number,
): CdWriteKind {
  const word0 = memory.readU32(gpa);
  const live = (word0 & CD_V) !== 0;
  if (target !== null && !live) {
    // The install of a CD the SMMU cannot be using: no need to look at the rest.
    writeWordsDown(memory, gpa, target);
    sync(cookie, ssid, true);
    memory.writeU32(gpa, target[0]!);
    sync(cookie, ssid, true);
    return 'install';
  }

  const current = new Uint32Array(WORDS);
  current[0] = word0;
  for (let i = 1; i < WORDS; i++) current[i] = memory.readU32(gpa + 4 * i);

  if (target === null) {
    if (!live && current.every((w) => w === 0)) return 'unchanged';
    if (live) {
      // Dword 0 as Linux clears it: 0, the V half first.
      memory.writeU32(gpa, 0);
      memory.writeU32(gpa + 4, 0);
      current[1] = 0;
      sync(cookie, ssid, true);
    }
    // The rest is unused once V=0; clear it so a later install starts from zeros.
    let changed = false;
    for (let i = 1; i < WORDS; i++) {
      if (current[i] !== 0) {
        memory.writeU32(gpa + 4 * i, 0);
        changed = true;
      }
    }
    if (changed) sync(cookie, ssid, true);
    return 'clear';
  }

  let differing = 0;
  let which = -1;
  for (let i = 0; i < WORDS; i++) {
    if (current[i] !== target[i]) {
      differing++;
      which = i;
    }
  }
  if (differing === 0) return 'unchanged';
  if (differing === 1) {
    // One 32-bit store: the SMMU sees either the old or the new CD, both valid.
    memory.writeU32(gpa + 4 * which, target[which]!);
    sync(cookie, ssid, true);
    return 'hitless';
  }
  memory.writeU32(gpa, current[0]! & ~CD_V);
  sync(cookie, ssid, true);
  writeWordsDown(memory, gpa, target);
  sync(cookie, ssid, true);
  memory.writeU32(gpa, target[0]!);
  sync(cookie, ssid, true);
  return 'breaking';
}

/** Words 15 down to 1 of `target`, in that order (word 0 holds V and goes last, after a sync). */
function writeWordsDown(memory: GuestMemory, gpa: number, target: Uint32Array): void {
  const bank = memory.ramBank(gpa, CD_BYTES, 'write');
  if (bank === null) {
    // Across banks, or not RAM: store by store, each one checked.
    for (let i = WORDS - 1; i >= 1; i--) memory.writeU32(gpa + 4 * i, target[i]!);
    return;
  }
  const view = bank.view;
  const off = gpa - bank.gpa;
  for (let i = WORDS - 1; i >= 1; i--) view.setUint32(off + 4 * i, target[i]!, true);
}
