import { createBareQueuePair } from '@vmmkit/core/testing';
import { afterAll, bench, describe } from 'vitest';
import { Status } from '../protocol/constants.js';
import { createVirtioIommuHarness, mapUnmapWorkload } from '../testing/index.js';

/**
 * MAP+UNMAP pairs through real virtqueues (driver queue in guest memory, virtio-mmio kick,
 * device pop, request parsing, B+ tree update, tail write, used ring, driver collect), in
 * batches of 1 and 64. Baseline in the same run: the bare virtqueue round trip of the same
 * 2-descriptor chains (add, pop, pushUsed, collect) with no device behind it.
 */

const BATCH = 64;
const h = createVirtioIommuHarness({ endpoints: [{ id: 1 }], bypass: false });
const { maps, unmaps } = mapUnmapWorkload(h, BATCH);
const statuses = new Uint8Array(BATCH);
const one = [maps[0]!];
const oneUnmap = [unmaps[0]!];
let failures = 0;

function check(count: number): void {
  for (let i = 0; i < count; i++) if (statuses[i] !== Status.OK) failures++;
}

/** 64 pairs: one batch of 64 MAPs, one of 64 UNMAPs. */
function pairsBatch64(): void {
  h.submitBatch(maps, 4, statuses);
  check(BATCH);
  h.submitBatch(unmaps, 4, statuses);
  check(BATCH);
}

/** 1 pair: a MAP, then an UNMAP, each alone in the queue with its own kick. */
function pairBatch1(): void {
  h.submitBatch(one, 4, statuses);
  check(1);
  h.submitBatch(oneUnmap, 4, statuses);
  check(1);
}

// Baseline: the same chain shape through a bare driver/device queue pair, 64 per round.
const bare = createBareQueuePair();
const bareQueue64 = (): void => {
  bare.round(BATCH);
};

describe('virtio-iommu MAP+UNMAP through real virtqueues', () => {
  bench('baseline: bare virtqueue add/pop/pushUsed/collect, 64 chains', bareQueue64);
  bench('64 MAP+UNMAP pairs, batches of 64', pairsBatch64);
  bench('1 MAP+UNMAP pair, batches of 1', pairBatch1);
});

afterAll(() => {
  const rounds = 5;
  const n = 400;
  const best = { bare: Infinity, batch64: Infinity, batch1: Infinity };
  for (let r = 0; r < rounds; r++) {
    let start = performance.now();
    for (let i = 0; i < n; i++) bareQueue64();
    best.bare = Math.min(best.bare, performance.now() - start);
    start = performance.now();
    for (let i = 0; i < n; i++) pairsBatch64();
    best.batch64 = Math.min(best.batch64, performance.now() - start);
    start = performance.now();
    for (let i = 0; i < n * 8; i++) pairBatch1();
    best.batch1 = Math.min(best.batch1, performance.now() - start);
  }
  const perSecond = (count: number, ms: number) => (count / ms) * 1000;
  const bareChains = perSecond(n * BATCH, best.bare);
  const requests64 = perSecond(n * BATCH * 2, best.batch64);
  const requests1 = perSecond(n * 8 * 2, best.batch1);
  console.info(
    [
      `bare virtqueue round trips: ${(bareChains / 1e6).toFixed(2)} M chains/s`,
      `batch 64: ${(requests64 / 1e6).toFixed(2)} M requests/s (${(requests64 / 2e6).toFixed(2)} M pairs/s), ${(requests64 / bareChains).toFixed(2)}x the bare queue`,
      `batch 1:  ${(requests1 / 1e6).toFixed(2)} M requests/s (${(requests1 / 2e6).toFixed(2)} M pairs/s), ${(requests1 / bareChains).toFixed(2)}x the bare queue`,
      `non-OK statuses: ${failures}, live mappings after: ${h.device.mappingCount}`,
    ].join('\n'),
  );
});
