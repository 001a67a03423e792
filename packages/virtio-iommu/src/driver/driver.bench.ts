import { afterAll, bench, describe } from 'vitest';
import { MapFlag, Status } from '../protocol/constants.js';
import { encodeAttach, encodeMap, encodeUnmap } from '../protocol/requests.js';
import { createVirtioIommuHarness } from '../testing/index.js';
import { VirtioIommuDriver } from './driver.js';

/**
 * The guest driver's cost per MAP+UNMAP pair: argument checks, encoding into the staging
 * buffer, slot copy, descriptors, one kick per batch, status collection and typed results.
 * Baseline in the same run: the harness submitting the same requests pre-encoded (same device,
 * same queue shape), so the ratio is what the driver adds.
 */

const BATCH = 64;
const RAM = 0x4000_0000;
const iovaOf = (i: number) => 0xffff_0000_0000 + i * 0x1000;

const bare = createVirtioIommuHarness({ endpoints: [{ id: 1 }], bypass: false });
bare.submitBatch([encodeAttach({ domain: 1, endpoint: 1 })]);
const maps = Array.from({ length: BATCH }, (_, i) =>
  encodeMap({
    domain: 1,
    virtStart: iovaOf(i),
    virtEnd: iovaOf(i) + 0xfff,
    physStart: RAM + i * 0x1000,
    flags: 3,
  }),
);
const unmaps = Array.from({ length: BATCH }, (_, i) =>
  encodeUnmap({ domain: 1, virtStart: iovaOf(i), virtEnd: iovaOf(i) + 0xfff }),
);
const statuses = new Uint8Array(BATCH);
let failures = 0;

function bareBatch64(): void {
  bare.submitBatch(maps, 4, statuses);
  for (let i = 0; i < BATCH; i++) if (statuses[i] !== Status.OK) failures++;
  bare.submitBatch(unmaps, 4, statuses);
  for (let i = 0; i < BATCH; i++) if (statuses[i] !== Status.OK) failures++;
}

const h = createVirtioIommuHarness({ endpoints: [{ id: 1 }], bypass: false });
const { mmio, base, memory, allocator } = h.guest;
const driver = new VirtioIommuDriver({ mmio, base, memory, allocator });
const domain = driver.createDomain();
driver.attach(1, domain);
const batch = driver.batch(BATCH);

function driverBatch64(): void {
  for (let i = 0; i < BATCH; i++)
    batch.map(domain, iovaOf(i), RAM + i * 0x1000, 0x1000, MapFlag.READ | MapFlag.WRITE);
  if (!batch.submit().ok) failures++;
  for (let i = 0; i < BATCH; i++) batch.unmap(domain, iovaOf(i), 0x1000);
  if (!batch.submit().ok) failures++;
}

function driverBatch1(): void {
  driver.map(domain, iovaOf(0), RAM, 0x1000);
  driver.unmap(domain, iovaOf(0), 0x1000);
}

function driverBigint64(): void {
  for (let i = 0; i < BATCH; i++) {
    batch.map(domain, 0xffff_ffff_0000_0000n + BigInt(i * 0x1000), RAM + i * 0x1000, 0x1000, MapFlag.READ);
  }
  if (!batch.submit().ok) failures++;
  for (let i = 0; i < BATCH; i++) batch.unmap(domain, 0xffff_ffff_0000_0000n + BigInt(i * 0x1000), 0x1000);
  if (!batch.submit().ok) failures++;
}

describe('virtio-iommu guest driver MAP+UNMAP', () => {
  bench('baseline: pre-encoded requests through the harness, 64 pairs', bareBatch64);
  bench('driver batch, 64 pairs (safe-integer IOVAs)', driverBatch64);
  bench('driver batch, 64 pairs (bigint IOVAs above 2^53)', driverBigint64);
  bench('driver map()+unmap(), 1 pair', driverBatch1);
});

afterAll(() => {
  if (failures !== 0) throw new Error(`${failures} batches failed during the benchmark`);
});
