/**
 * The `arm` vendor plugin: everything this package contributes to a vmmkit container.
 *
 * - guest side: the SMMUv3 PASID-table (CD table) vendor, format `arm-smmu-v3`, and the
 *   `arm-lpae-s1` io-pgtable format;
 * - host side: the virtio-iommu nested backends for table format 1 (one Arm LPAE table) and
 *   format 2 (SMMUv3 PASID table), found by the device through the core registry only.
 */
import { definePlugin } from '@vmmkit/core';
import { armSmmuV3PasidVendor } from './cdlib/vendor.js';
import { armLpaeS1Format } from './lpae/format.js';
import { ArmLpaeNestedBackend } from './nested/lpae-backend.js';
import type { NestedBackendOptions } from './nested/options.js';
import { ArmSmmuV3PasidBackend } from './nested/pasid-backend.js';

/** A plugin whose nested backends model an SMMU with these options (OAS, PASID bits, features). */
export function createSmmuv3Plugin(options: NestedBackendOptions = {}) {
  // Built now so a bad option fails at the call, not when a container loads the plugin.
  const lpae = new ArmLpaeNestedBackend(options);
  const pasidTable = new ArmSmmuV3PasidBackend(options);
  return definePlugin('arm', (r) => {
    r.pasidTableVendor(armSmmuV3PasidVendor);
    r.ioPgtableFormat(armLpaeS1Format);
    r.nestedBackend(lpae);
    r.nestedBackend(pasidTable);
  });
}

/** The `arm` plugin with the defaults: 48-bit OAS, 20 PASID bits, 4K/16K/64K granules. */
export const smmuv3Plugin = createSmmuv3Plugin();
