import { definePlugin } from '@vmmkit/core';
import { virtPgtableFormat } from './virt-pgtable.js';
import { virtNestedBackend } from './virt-walker.js';

/** Loading this module into a vmmkit machine adds table format 3 to guest and host: one line each. */
export const virtPlugin = definePlugin('virt', (r) => {
  r.ioPgtableFormat(virtPgtableFormat);
  r.nestedBackend(virtNestedBackend);
});

export default virtPlugin;
