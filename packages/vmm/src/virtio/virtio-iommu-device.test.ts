import { VmmError } from '@vmmkit/core';
import { describe, expect, it } from 'vitest';
import { virtioIommu } from './virtio-iommu-device.js';

describe('virtioIommu device spec', () => {
  it('refuses a MAP granule below the 4 KiB pages its DMA engines translate', () => {
    const make = (pageSizeMask: bigint) => () => virtioIommu({ endpoints: [{ id: 1 }], pageSizeMask });
    for (const mask of [0xffff_ffff_ffff_fe00n, 0x1n, 0x1000n | 0x800n]) {
      expect(make(mask)).toThrow(VmmError);
      expect(make(mask)).toThrow(/pageSizeMask .* smaller than the 4 KiB pages.*clear its bits below bit 12/);
    }
    for (const mask of [0xffff_ffff_ffff_f000n, 0x20_1000n, 0xffff_ffff_ffff_0000n]) {
      expect(make(mask)).not.toThrow();
    }
  });
});
