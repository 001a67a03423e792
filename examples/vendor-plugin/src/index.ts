export { virtPlugin } from './plugin.js';
export {
  PAGE_SIZE_BITMAP,
  PTE_READ,
  PTE_TABLE,
  PTE_VALID,
  PTE_WRITE,
  VIRT_FORMAT_NAME,
  VIRT_TABLE_FORMAT,
} from './virt-format.js';
export { virtPgtableFormat } from './virt-pgtable.js';
export { virtNestedBackend } from './virt-walker.js';
