import { bench, describe } from 'vitest';
import { GuestMemory } from './guest-memory.js';

/**
 * 64-bit random reads through GuestMemory (checked, split into 32-bit halves) against raw
 * typed-array reads of the same buffer: the ratio is the cost of the checks.
 */
const BANK = 0x4000_0000;
const SIZE = 64 * 1024 * 1024;
const READS = 1 << 16;

const memory = new GuestMemory();
const bank = memory.addBank({ gpa: BANK, size: SIZE });
const raw = new Uint32Array(bank.buffer!);
let seed = 0x1234567;
for (let i = 0; i < raw.length; i += 1024) {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  raw[i] = seed;
}
const offsets = new Float64Array(READS);
for (let i = 0; i < READS; i++) {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  offsets[i] = (seed % (SIZE / 8)) * 8;
}
const pair = new Uint32Array(2);
let sink = 0;

describe(`64-bit random reads (${READS} per iteration)`, () => {
  bench('baseline: raw Uint32Array pair reads of the same buffer', () => {
    let acc = 0;
    for (let i = 0; i < READS; i++) {
      const word = offsets[i]! / 4;
      acc = (acc + raw[word]! + raw[word + 1]!) | 0;
    }
    sink ^= acc;
  });

  bench('GuestMemory.readU64Pair (checked)', () => {
    let acc = 0;
    for (let i = 0; i < READS; i++) {
      memory.readU64Pair(BANK + offsets[i]!, pair);
      acc = (acc + pair[0]! + pair[1]!) | 0;
    }
    sink ^= acc;
  });

  bench('GuestMemory.readU32 x2 (checked)', () => {
    let acc = 0;
    for (let i = 0; i < READS; i++) {
      const gpa = BANK + offsets[i]!;
      acc = (acc + memory.readU32(gpa) + memory.readU32(gpa + 4)) | 0;
    }
    sink ^= acc;
  });

  bench('GuestMemory.readU64 (bigint)', () => {
    let acc = 0n;
    for (let i = 0; i < READS; i++) acc ^= memory.readU64(BANK + offsets[i]!);
    sink ^= Number(acc & 1n);
  });
});

export { sink };
