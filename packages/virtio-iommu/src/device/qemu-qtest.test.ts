import { describe, expect, it } from 'vitest';
import { MapFlag, Status } from '../protocol/constants.js';
import { encodeAttach, encodeDetach, encodeMap, encodeUnmap } from '../protocol/requests.js';
import { createVirtioIommuHarness, requestStatus, type VirtioIommuHarness } from '../testing/index.js';

/**
 * A port of QEMU's tests/qtest/virtio-iommu-test.c (attach/detach and map/unmap scenarios,
 * including the spec's UNMAP examples). QEMU maps byte ranges such as [0, 9], so the device
 * here offers a 1-byte granule (bit 0 of page_size_mask) to accept them.
 */

const { OK, INVAL, RANGE, NOENT } = Status;
const READ = MapFlag.READ;

function qtestDevice(pageSizeMask = (1n << 64n) - 1n): VirtioIommuHarness {
  // Endpoint 0 exists; 1 and 444 do not.
  return createVirtioIommuHarness({ endpoints: [{ id: 0 }], pageSizeMask });
}

const attach = (domain: number, endpoint: number) => encodeAttach({ domain, endpoint });
const detach = (domain: number, endpoint: number) => encodeDetach({ domain, endpoint });
const map = (domain: number, virtStart: number, virtEnd: number, physStart: number) =>
  encodeMap({ domain, virtStart, virtEnd, physStart, flags: READ });
const unmap = (domain: number, virtStart: number, virtEnd: number) =>
  encodeUnmap({ domain, virtStart, virtEnd });

async function run(h: VirtioIommuHarness, script: [Uint8Array, number][]): Promise<void> {
  for (const [index, [request, expected]] of script.entries()) {
    expect({ step: index, status: await requestStatus(h, request) }).toEqual({
      step: index,
      status: expected,
    });
  }
}

describe('QEMU qtest virtio-iommu scenarios', () => {
  it('attach/detach', async () => {
    const h = qtestDevice();
    await run(h, [
      [attach(0, 0), OK],
      [attach(0, 444), NOENT], // endpoint that does not exist
      [detach(0, 1), NOENT],
      [attach(1, 0), OK], // moves ep0 from domain 0 to domain 1
      [detach(0, 0), INVAL], // ep0 is not in domain 0 (which died with the move)
      [detach(1, 0), OK],
      [attach(1, 0), OK],
      [map(1, 0x0, 0xfff, 0xa1000), OK],
      [map(1, 0x2000, 0x2fff, 0xb1000), OK],
      [detach(1, 0), OK],
    ]);
    // The last endpoint left: domain 1 is gone with its mappings.
    expect(h.device.domains()).toEqual([]);
    await run(h, [[map(1, 0x4000, 0x4fff, 0xc1000), NOENT]]);
  });

  it('map/unmap and the seven UNMAP examples of the specification', async () => {
    const h = qtestDevice();
    await run(h, [
      [attach(1, 0), OK],
      [map(0, 0, 0xfff, 0xa1000), NOENT],
      [map(1, 0x0, 0xfff, 0xa1000), OK],
      [map(1, 0, 0xffff, 0xb1000), INVAL], // overlaps the previous mapping
      [unmap(4, 0x10, 0xfff), NOENT],
      [unmap(1, 0x10, 0xfff), RANGE], // would split [0, 0xfff]
      [unmap(1, 0, 0x1000), OK], // unmaps everything
      // 1: nothing mapped
      [unmap(1, 0, 4), OK],
      // 2
      [map(1, 0, 9, 0xa1000), OK],
      [unmap(1, 0, 9), OK],
      // 3
      [map(1, 0, 4, 0xb1000), OK],
      [map(1, 5, 9, 0xb1000), OK],
      [unmap(1, 0, 9), OK], // removes [0,4] and [5,9]
      // 4
      [map(1, 0, 9, 0xc1000), OK],
      [unmap(1, 0, 4), RANGE], // removes nothing
      [unmap(1, 0, 10), OK],
      // 5
      [map(1, 0, 4, 0xd1000), OK],
      [map(1, 5, 9, 0xd1000), OK],
      [unmap(1, 0, 4), OK], // removes [0,4] only
      [unmap(1, 5, 9), OK],
      // 6
      [map(1, 0, 4, 0xe2000), OK],
      [unmap(1, 0, 9), OK],
      // 7
      [map(1, 0, 4, 0xf2000), OK],
      [map(1, 10, 14, 0xf3000), OK],
      [unmap(1, 0, 14), OK], // removes [0,4] and [10,14]
      [map(1, 10, 14, 0xf3000), OK],
      [map(1, 0, 4, 0xf2000), OK],
      [unmap(1, 0, 4), OK], // removes [0,4] only
      [map(1, 10, 14, 0xf3000), INVAL], // [10,14] is still mapped
    ]);
  });

  it('the RANGE after example 4 removed nothing: [0,9] still translates', async () => {
    const h = qtestDevice();
    await run(h, [
      [attach(1, 0), OK],
      [map(1, 0, 9, 0xc1000), OK],
      [unmap(1, 0, 4), RANGE],
    ]);
    expect(h.translate({ endpoint: 0, iova: 3n, access: 'read' })).toEqual({
      ok: true,
      address: 0xc1003n,
    });
  });

  it('with a 4 KiB granule, the byte-granular MAPs of the script are S_RANGE', async () => {
    const h = qtestDevice(0xffff_ffff_ffff_f000n);
    await run(h, [
      [attach(1, 0), OK],
      [map(1, 0, 9, 0xa1000), RANGE],
      [map(1, 0, 0xfff, 0xa1000), OK],
    ]);
  });
});
