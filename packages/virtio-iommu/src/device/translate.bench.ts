import { DmaAccess, NO_PASID } from '@vmmkit/core';
import { afterAll, bench, describe } from 'vitest';
import { MapFlag } from '../protocol/constants.js';
import { encodeAttach, encodeMap } from '../protocol/requests.js';
import { createVirtioIommuHarness } from '../testing/index.js';
import { createPageTranslation } from './translator.js';

/**
 * The DMA fast path: `translatePage` over 4096 live 4 KiB mappings at 64-bit IOVAs, visiting
 * pages in a scattered order. Baseline in the same run: the same visit order over a flat
 * Float64Array of physical addresses (what a direct page array would cost, no checks).
 */

const PAGES = 4096;
const BASE_HI = 0xffff_fff0;
const h = createVirtioIommuHarness({ endpoints: [{ id: 1 }], bypass: false });
h.submitBatch([encodeAttach({ domain: 1, endpoint: 1 })]);
const requests = [];
for (let i = 0; i < PAGES; i++) {
  const iova = (BigInt(BASE_HI) << 32n) + BigInt(i) * 0x1000n;
  requests.push(
    encodeMap({
      domain: 1,
      virtStart: iova,
      virtEnd: iova + 0xfffn,
      physStart: 0x100_0000 + i * 0x1000,
      flags: MapFlag.READ | MapFlag.WRITE,
    }),
  );
}
h.submitBatch(requests);
const order = Uint32Array.from({ length: PAGES }, (_, i) => (i * 2654435761) % PAGES);
const out = createPageTranslation();
const flat = Float64Array.from({ length: PAGES }, (_, i) => 0x100_0000 + i * 0x1000);
let sink = 0;
let faults = 0;

function translateAll(): void {
  for (let i = 0; i < PAGES; i++) {
    const page = order[i]!;
    if (h.device.translatePageHalves(1, NO_PASID, page * 0x1000 + 8, BASE_HI, DmaAccess.READ, out))
      sink += out.pa;
    else faults++;
  }
}

/** A DMA engine streaming through a 64 KiB buffer again and again: the domain's cache hits. */
function translateStream(): void {
  for (let i = 0; i < PAGES; i++) {
    if (h.device.translatePageHalves(1, NO_PASID, (i & 15) * 0x1000 + 8, BASE_HI, DmaAccess.READ, out))
      sink += out.pa;
    else faults++;
  }
}

function flatAll(): void {
  for (let i = 0; i < PAGES; i++) sink += flat[order[i]!]! + 8;
}

describe('DMA translation fast path, 4096 mappings', () => {
  bench('baseline: flat Float64Array lookup', flatAll);
  bench('translatePageHalves, scattered pages (B+ tree walks)', translateAll);
  bench('translatePageHalves, streaming over 16 pages (cache hits)', translateStream);
});

afterAll(() => {
  const rounds = 5;
  const n = 200;
  const best = { flat: Infinity, translate: Infinity, stream: Infinity };
  for (let r = 0; r < rounds; r++) {
    let start = performance.now();
    for (let i = 0; i < n; i++) flatAll();
    best.flat = Math.min(best.flat, performance.now() - start);
    start = performance.now();
    for (let i = 0; i < n; i++) translateAll();
    best.translate = Math.min(best.translate, performance.now() - start);
    start = performance.now();
    for (let i = 0; i < n; i++) translateStream();
    best.stream = Math.min(best.stream, performance.now() - start);
  }
  const rate = (ms: number) => (n * PAGES) / ms / 1000;
  console.info(
    [
      `flat array baseline: ${rate(best.flat).toFixed(2)} M lookups/s`,
      `translatePage, scattered: ${rate(best.translate).toFixed(2)} M/s (${(best.translate / best.flat).toFixed(1)}x the baseline's time)`,
      `translatePage, streaming: ${rate(best.stream).toFixed(2)} M/s (${(best.stream / best.flat).toFixed(1)}x the baseline's time)`,
      `faults ${faults} (sink ${sink > 0})`,
    ].join('\n'),
  );
});
