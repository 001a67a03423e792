import { afterAll, bench, describe } from 'vitest';
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

function rawReads(): void {
  let acc = 0;
  for (let i = 0; i < READS; i++) {
    const word = offsets[i]! / 4;
    acc = (acc + raw[word]! + raw[word + 1]!) | 0;
  }
  sink ^= acc;
}

function checkedReads(): void {
  let acc = 0;
  for (let i = 0; i < READS; i++) {
    memory.readU64Pair(BANK + offsets[i]!, pair);
    acc = (acc + pair[0]! + pair[1]!) | 0;
  }
  sink ^= acc;
}

describe(`64-bit random reads (${READS} per iteration)`, () => {
  bench('baseline: raw Uint32Array pair reads of the same buffer', rawReads);

  bench('GuestMemory.readU64Pair (checked)', checkedReads);

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

afterAll(() => {
  // The same-run ratio, measured in interleaved rounds so machine load hits both sides alike.
  const best = { raw: Infinity, checked: Infinity };
  for (let round = 0; round < 7; round++) {
    let start = performance.now();
    for (let i = 0; i < 20; i++) rawReads();
    best.raw = Math.min(best.raw, performance.now() - start);
    start = performance.now();
    for (let i = 0; i < 20; i++) checkedReads();
    best.checked = Math.min(best.checked, performance.now() - start);
  }
  const reads = 20 * READS;
  const rate = (ms: number) => `${(((reads / ms) * 1e3) / 1e6).toFixed(1)} M reads/s`;
  console.log(
    [
      '',
      `64-bit random reads over ${SIZE >> 20} MiB (best of 7 × ${reads})`,
      `  raw Uint32Array pair reads     : ${rate(best.raw)}`,
      `  GuestMemory.readU64Pair checked: ${rate(best.checked)}`,
      `  ratio checked / raw            : ${(best.raw / best.checked).toFixed(3)} (throughput), ${(best.checked / best.raw).toFixed(2)}× the time`,
      `  (sink ${sink % 7})`,
    ].join('\n'),
  );
});

export { sink };
