import { hex, type NestedFormatDescription, VmmError } from '@vmmkit/core';
import { ResvMemSubtype } from '../protocol/constants.js';
import { encodeProperties, type ProbeProperty, propertySize } from '../protocol/properties.js';
import type { ResolvedEndpoint } from './options.js';

/**
 * The properties PROBE reports for an endpoint (virtio 1.2 §5.13.6.8): its RESV_MEM regions,
 * then, when the nested extension is negotiated, one group per table format (PROTOCOL.md):
 * PAGE_SIZE_MASK, INPUT_RANGE, OUTPUT_SIZE, PASID_SIZE (PASID-table formats only) and the
 * PAGE_TABLE_FMT or PASID_TABLE_FMT property that closes the group. The geometry properties of
 * a group describe the format property that follows them.
 */
export function probeProperties(
  endpoint: ResolvedEndpoint,
  formats: readonly NestedFormatDescription[],
  nested: boolean,
): ProbeProperty[] {
  const out: ProbeProperty[] = endpoint.regions.map((r) => ({
    type: 'resv-mem',
    subtype: r.msi ? ResvMemSubtype.MSI : ResvMemSubtype.RESERVED,
    start: r.start,
    end: r.end,
  }));
  if (!nested) return out;
  for (const f of formats) {
    out.push({ type: 'page-size-mask', mask: f.pageSizeMask });
    const inputEnd = f.inputBits >= 64 ? (1n << 64n) - 1n : (1n << BigInt(f.inputBits)) - 1n;
    out.push({ type: 'input-range', start: 0n, end: inputEnd });
    out.push({ type: 'output-size', bits: f.outputBits });
    if (f.kind === 'pasid-table') out.push({ type: 'pasid-size', bits: f.pasidBits });
    out.push({
      type: f.kind === 'pasid-table' ? 'pasid-table-fmt' : 'page-table-fmt',
      format: f.format,
      asidBits: f.asidBits,
      flags: f.flags,
    });
  }
  return out;
}

/** Pre-encoded PROBE answers of one endpoint: without and with the nested extension. */
export interface ProbeAnswers {
  upstream: Uint8Array;
  nested: Uint8Array;
}

/**
 * Encodes both answers once, so a PROBE request copies bytes and allocates nothing. Throws a
 * `VmmError` for the VMM when they cannot fit `probeSize` (QEMU would answer S_INVAL at run time).
 */
export function buildProbeAnswers(
  endpoint: ResolvedEndpoint,
  formats: readonly NestedFormatDescription[],
  probeSize: number,
  probeOffered: boolean,
): ProbeAnswers {
  const encode = (nested: boolean): Uint8Array => {
    const properties = probeProperties(endpoint, formats, nested);
    const size = properties.reduce((sum, p) => sum + propertySize(p), 0);
    if (size > probeSize) {
      if (!probeOffered) return new Uint8Array(0);
      throw new VmmError(
        'ERANGE',
        `endpoint ${endpoint.id} (${hex(endpoint.id)}) needs ${size} bytes of PROBE properties${nested ? ' with the nested extension' : ''} but probeSize is ${probeSize}; raise probeSize`,
        { endpoint: endpoint.id, size, probeSize },
      );
    }
    return encodeProperties(properties, size);
  };
  return { upstream: encode(false), nested: encode(true) };
}
