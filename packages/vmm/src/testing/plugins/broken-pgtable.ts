/**
 * A plugin whose page-table format cannot build a table: `vmm run --plugin … --nested broken`
 * then fails inside the guest, which is how the CLI's "the guest failed" path is tested.
 */
import { definePlugin } from '@vmmkit/core';

export const brokenPlugin = definePlugin('broken', (r) => {
  r.ioPgtableFormat({
    name: 'broken',
    vendor: 'broken',
    alloc() {
      throw new Error('the broken plugin cannot build a table');
    },
    attachDescriptor: () => ({ format: 1, payload: new Uint8Array(68) }),
  });
});
