import { afterAll, bench, describe } from 'vitest';
import { createTestMemory } from '../testing/index.js';
import { DeviceQueue } from './device-queue.js';
import { DriverQueue } from './driver-queue.js';
import { splitQueueBytes, splitQueueLayout } from './layout.js';
import type { QueueFeatures } from './types.js';

/**
 * One request = the driver adds a 2-descriptor chain (16 readable + 4 writable bytes), the device
 * pops it (and pops again to find the ring drained, as a device loop does), returns it with
 * pushUsed, the driver collects it; kick and interrupt decisions included (EVENT_IDX). The baseline moves the same ring
 * bytes with raw typed-array stores and loads and no checks, on the same memory.
 */

const SIZE = 256;
const features: QueueFeatures = { eventIdx: true, indirect: false };
const t = createTestMemory({ size: 0x40_0000 });
const ringBase = t.allocator.alloc(splitQueueBytes(SIZE));
const layout = splitQueueLayout(ringBase, SIZE);
const driver = new DriverQueue(t.memory, layout, features);
const device = new DeviceQueue(t.memory, layout, features);
const request = t.scratch.base + 0x1000;
const readable = [{ addr: request, len: 16 }];
const writable = [{ addr: request + 0x100, len: 4 }];
let sink = 0;
const onUsed = (_token: unknown, len: number): void => {
  sink += len;
};

function queueRoundTrip(): void {
  driver.add(readable, writable, null);
  driver.kickNeeded();
  const r = device.pop()!;
  const chain = r.ok ? r.chain : null;
  device.pushUsed(chain !== null ? chain.head : 0, chain !== null ? chain.writableLength : 0);
  // A device drains the ring; the empty pop re-arms the driver's notification (EVENT_IDX).
  device.pop();
  device.needsInterrupt();
  driver.collect(onUsed);
}

// Baseline: a second ring of the same shape in the same bank, driven with raw typed arrays.
const bank = t.memory.ramBank(ringBase, splitQueueBytes(SIZE))!;
const rawBase = t.allocator.alloc(splitQueueBytes(SIZE));
const raw = splitQueueLayout(rawBase, SIZE);
const u16 = new Uint16Array(bank.buffer!, bank.bufferOffset, bank.size >>> 1);
const u32 = new Uint32Array(bank.buffer!, bank.bufferOffset, bank.size >>> 2);
const descW = (raw.descTable - bank.gpa) >>> 2;
const availH = (raw.availRing - bank.gpa) >>> 1;
const usedW = (raw.usedRing - bank.gpa) >>> 2;
const usedH = (raw.usedRing - bank.gpa) >>> 1;
let rawAvail = 0;
let rawUsed = 0;

/**
 * The baseline body; the two ring indexes move either as plain stores and loads or with the
 * Atomics a cross-thread ring needs.
 */
function rawRoundTrip(atomic: boolean): void {
  // Driver: two descriptors, ring entry, index.
  const head = (rawAvail * 2) & (SIZE - 1);
  let d = descW + head * 4;
  u32[d] = request;
  u32[d + 1] = 0;
  u32[d + 2] = 16;
  u16[(d + 3) * 2] = 1;
  u16[(d + 3) * 2 + 1] = head + 1;
  d += 4;
  u32[d] = request + 0x100;
  u32[d + 1] = 0;
  u32[d + 2] = 4;
  u16[(d + 3) * 2] = 2;
  u16[availH + 2 + (rawAvail & (SIZE - 1))] = head;
  rawAvail = (rawAvail + 1) & 0xffff;
  if (atomic) Atomics.store(u16, availH + 1, rawAvail);
  else u16[availH + 1] = rawAvail;
  // Device: read index, entry, both descriptors; write the used element and index.
  const idx = atomic ? Atomics.load(u16, availH + 1) : u16[availH + 1]!;
  const h = u16[availH + 2 + ((idx - 1) & (SIZE - 1))]!;
  const first = descW + h * 4;
  const next = u16[(first + 3) * 2 + 1]!;
  const second = descW + next * 4;
  sink += u32[first]! + u32[first + 2]! + u32[second]! + u32[second + 2]!;
  const slot = usedW + 1 + (rawUsed & (SIZE - 1)) * 2;
  u32[slot] = h;
  u32[slot + 1] = u32[second + 2]!;
  rawUsed = (rawUsed + 1) & 0xffff;
  if (atomic) Atomics.store(u16, usedH + 1, rawUsed);
  else u16[usedH + 1] = rawUsed;
  // Driver: read the used element back.
  const usedIdx = atomic ? Atomics.load(u16, usedH + 1) : u16[usedH + 1]!;
  sink += u32[usedW + 1 + ((usedIdx - 1) & (SIZE - 1)) * 2 + 1]!;
}

const bareRoundTrip = (): void => rawRoundTrip(false);
const bareAtomicRoundTrip = (): void => rawRoundTrip(true);

describe('split virtqueue round trip, 2-descriptor chain', () => {
  bench('baseline: raw typed-array ring stores/loads (no checks)', bareRoundTrip);
  bench('baseline + Atomics on the two indexes (no checks)', bareAtomicRoundTrip);
  bench('DriverQueue.add + DeviceQueue.pop + pushUsed + collect', queueRoundTrip);
});

afterAll(() => {
  // A same-run ratio, measured in interleaved rounds so drift hits both sides alike.
  const rounds = 5;
  const n = 100_000;
  const best = { bare: Infinity, atomic: Infinity, queue: Infinity };
  for (let r = 0; r < rounds; r++) {
    let start = performance.now();
    for (let i = 0; i < n; i++) bareRoundTrip();
    best.bare = Math.min(best.bare, performance.now() - start);
    start = performance.now();
    for (let i = 0; i < n; i++) bareAtomicRoundTrip();
    best.atomic = Math.min(best.atomic, performance.now() - start);
    start = performance.now();
    for (let i = 0; i < n; i++) queueRoundTrip();
    best.queue = Math.min(best.queue, performance.now() - start);
  }
  const rate = (ms: number) => `${(((n / ms) * 1000) / 1e6).toFixed(2)} M/s`;
  console.log(
    [
      '',
      'split virtqueue, 2-descriptor chain round trip (best of 5 × 100k)',
      `  baseline raw typed arrays : ${rate(best.bare)}  ${((best.bare * 1e6) / n).toFixed(1)} ns/req`,
      `  baseline + Atomics indexes: ${rate(best.atomic)}  ${((best.atomic * 1e6) / n).toFixed(1)} ns/req`,
      `  DriverQueue + DeviceQueue : ${rate(best.queue)}  ${((best.queue * 1e6) / n).toFixed(1)} ns/req`,
      `  ratio queue / baseline    : ${(best.bare / best.queue).toFixed(3)} (throughput), ${(best.queue / best.bare).toFixed(1)}× the time`,
      `  ratio queue / atomic base : ${(best.atomic / best.queue).toFixed(3)} (throughput)`,
      `  (sink ${sink % 7})`,
    ].join('\n'),
  );
});
