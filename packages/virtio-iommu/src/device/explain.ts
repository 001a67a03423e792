import { type DmaAccess, hex, NO_PASID, type TranslationStep } from '@vmmkit/core';
import { hi32, joinU64, lo32 } from '../protocol/u64.js';
import type { IommuState } from './iommu-state.js';
import { createPageTranslation, type Translator } from './translator.js';

const REASONS = [
  'UNKNOWN',
  'DOMAIN',
  'MAPPING',
  'WALK_EABT',
  'PTE_FETCH',
  'PERMISSION',
  'ACCESS',
  'OOR_ADDRESS',
];

/**
 * Every decision of one translation, for "why did this DMA go there / fault" views. Reads the
 * same state as a DMA but reports nothing on the event queue and changes no counters.
 */
export function explainTranslation(
  state: IommuState,
  translator: Translator,
  endpointId: number,
  pasid: number,
  iova: bigint,
  access: number,
): TranslationStep[] {
  const steps: TranslationStep[] = [];
  const endpoint = state.endpoints.get(endpointId);
  const domain = endpoint?.domain ?? null;
  steps.push({
    label: 'endpoint',
    value:
      endpoint === undefined
        ? 'unknown'
        : domain === null
          ? 'not attached'
          : `domain ${domain.id} (${domain.kind})`,
    fields: {
      endpoint: endpointId,
      pasid: pasid === NO_PASID ? 'none' : pasid,
      bypass: state.unattachedBypass(),
    },
  });
  const lo = lo32(iova);
  const hi = hi32(iova);
  if (endpoint !== undefined && domain !== null) {
    const region = endpoint.regionAt(lo, hi);
    if (region >= 0) {
      const b = endpoint.regionBounds;
      const start = joinU64(b[region * 4]!, b[region * 4 + 1]!);
      const end = joinU64(b[region * 4 + 2]!, b[region * 4 + 3]!);
      const msi = endpoint.regionMsi[region] === 1;
      steps.push({
        label: 'reserved region',
        value: `${msi ? 'MSI' : 'RESERVED'} ${hex(start)}-${hex(end)}`,
      });
    } else if (domain.table !== null) {
      if (iova < 2n ** 53n) {
        steps.push({
          label: 'guest table',
          value: `format ${domain.format}`,
          children: domain.table.explain(pasid, Number(iova), access as DmaAccess),
        });
      }
    } else if (domain.mappings !== null) {
      const slot = domain.mappings.floor(lo, hi);
      const pool = state.pool;
      steps.push({
        label: 'mapping',
        value:
          slot < 0
            ? 'none starts at or below the address'
            : `${hex(joinU64(pool.startLo[slot]!, pool.startHi[slot]!))}-${hex(joinU64(pool.endLo[slot]!, pool.endHi[slot]!))} → ${hex(joinU64(pool.physLo[slot]!, pool.physHi[slot]!))}`,
        ...(slot >= 0 ? { fields: { flags: pool.flags[slot]!, mappings: domain.mappings.size } } : {}),
      });
    }
  }
  const out = createPageTranslation();
  const ok = translator.translate(endpointId, pasid, lo, hi, access, out, false);
  steps.push({
    label: 'result',
    value: ok
      ? `${hex(joinU64(out.paLo, out.paHi))} (${out.length} bytes valid${out.mmio ? ', MMIO' : ''})`
      : `fault ${REASONS[out.reason] ?? out.reason}, flags ${hex(out.flags)}`,
  });
  return steps;
}
