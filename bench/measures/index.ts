import type { Measure } from '../measure.js';
import { attach1024 } from './attach-1024.js';
import { dmaCopy } from './dma-copy.js';
import { iotlbHit } from './iotlb-hit.js';
import { mapUnmap } from './map-unmap.js';
import { mappingBytes } from './mapping-bytes.js';
import { vqInline } from './vq-inline.js';
import { vqRoundtrip } from './vq-roundtrip.js';
import { walkUncached } from './walk-uncached.js';

/** Every figure of the report, in report order. */
export const measures: Measure[] = [
  iotlbHit,
  walkUncached,
  mapUnmap,
  dmaCopy,
  vqRoundtrip,
  vqInline,
  mappingBytes,
  attach1024,
];
