import { afterAll, bench, describe } from 'vitest';
import { mappingFootprint, objectFootprint } from '../testing/index.js';

/**
 * Host memory per live mapping at 10^6 mappings, all created with MAP requests through the
 * request queue. Counted: the JS heap plus the typed arrays behind it (the mapping pool),
 * measured after a forced GC. Baseline in the same run: 10^6 mappings as the plainest JS
 * representation, one `{ start, end, phys, flags }` object each in an array.
 */

const COUNT = 1_000_000;
const results: string[] = [];

function mapMillion(): void {
  const { bytesPerMapping, live, failures } = mappingFootprint(COUNT);
  results.push(
    `virtio-iommu device: ${live} live mappings, ${bytesPerMapping.toFixed(1)} bytes/mapping (heap + typed arrays), ${failures} failed MAPs`,
  );
}

function objectsMillion(): void {
  results.push(
    `baseline, one JS object per mapping in an array: ${objectFootprint(COUNT).toFixed(1)} bytes/mapping`,
  );
}

describe('host memory per mapping at 10^6 live mappings', () => {
  bench('baseline: 10^6 plain objects', objectsMillion, {
    iterations: 1,
    warmupIterations: 0,
    time: 0,
    warmupTime: 0,
  });
  bench('10^6 MAPs through the request queue', mapMillion, {
    iterations: 1,
    warmupIterations: 0,
    time: 0,
    warmupTime: 0,
  });
});

afterAll(() => {
  console.info(results.join('\n'));
});
