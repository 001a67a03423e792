import type {
  GuestMemory,
  NestedBackendRegistry,
  NestedFormatDescription,
  NestedInvalidation,
} from '@vmmkit/core';
import {
  INVALIDATE_CACHES_MASK,
  INVALIDATE_FLAGS_MASK,
  InvalidateCache,
  InvalidateFlag,
  InvalidateGranularity,
  RequestSize,
  Status,
} from '../protocol/constants.js';
import { AttachTableOffset, InvalidateOffset } from '../protocol/requests.js';
import type { IommuState } from './iommu-state.js';

/**
 * The nested extension's requests (PROTOCOL.md "Nested extension profile"): ATTACH_TABLE binds
 * an endpoint to a guest table through the backend registered for its format, INVALIDATE is
 * decoded and handed to the domain's table. Statuses follow PROTOCOL.md's table.
 */

const backendStatus = {
  inval: Status.INVAL,
  unsupp: Status.UNSUPP,
  fault: Status.FAULT,
  range: Status.RANGE,
};

export function attachTable(
  state: IommuState,
  memory: GuestMemory,
  view: DataView,
  bytes: Uint8Array,
): Status {
  const domainId = view.getUint32(AttachTableOffset.DOMAIN, true);
  const endpointId = view.getUint32(AttachTableOffset.ENDPOINT, true);
  // PROTOCOL.md: no ATTACH_TABLE flag is defined, so a non-zero `flags` is S_INVAL.
  if (view.getUint32(AttachTableOffset.FLAGS, true) !== 0) return Status.INVAL;
  // PROTOCOL.md: an unknown endpoint is S_NOENT.
  const endpoint = state.endpoints.get(endpointId);
  if (endpoint === undefined) return Status.NOENT;
  if (!state.domainInRange(domainId)) return Status.RANGE;
  // PROTOCOL.md: a format PROBE did not report for this endpoint is S_UNSUPP.
  const format = view.getUint16(AttachTableOffset.FORMAT, true);
  const description = endpoint.format(format);
  const backend = state.options.nestedBackends?.find(format);
  if (description === undefined || backend === undefined) return Status.UNSUPP;
  const payload = bytes.slice(AttachTableOffset.FORMAT, RequestSize.ATTACH_TABLE);
  const existing = state.domains.get(domainId);
  if (existing !== undefined) {
    // PROTOCOL.md: a domain already translating another way (mappings, bypass, another table)
    // is S_UNSUPP; the same table for another endpoint is S_OK and the endpoints share it.
    if (existing.kind !== 'table' || existing.format !== format || !existing.table!.sameTable(payload)) {
      return Status.UNSUPP;
    }
    if (endpoint.domain !== existing) state.moveEndpoint(endpoint, existing, false);
    return Status.OK;
  }
  if (!state.roomForDomain(endpoint)) return Status.NOMEM;
  // PROTOCOL.md: payload checks (reserved bytes, s1fmt/s1dss ranges, s1cdmax above PASID_SIZE,
  // table pointer alignment → S_INVAL; pointer outside guest RAM → S_FAULT) belong to the backend.
  let result: ReturnType<typeof backend.attach>;
  try {
    result = backend.attach({ memory, endpoint: endpointId, payload, pasidBits: description.pasidBits });
  } catch {
    // A backend that throws on guest input is a device-internal error, not a guest mistake.
    return Status.DEVERR;
  }
  if (!result.ok) return backendStatus[result.status] ?? Status.INVAL;
  const domain = state.createDomain(domainId, 'table');
  domain.table = result.table;
  domain.format = format;
  state.moveEndpoint(endpoint, domain, true);
  return Status.OK;
}

function granularityName(value: number): NestedInvalidation['granularity'] | null {
  switch (value) {
    case InvalidateGranularity.DOMAIN:
      return 'domain';
    case InvalidateGranularity.PASID:
      return 'pasid';
    case InvalidateGranularity.VA:
      return 'va';
    default:
      return null;
  }
}

export function invalidate(state: IommuState, view: DataView, bytes: Uint8Array): Status {
  const granularity = granularityName(view.getUint16(InvalidateOffset.GRANULARITY, true));
  const caches = view.getUint16(InvalidateOffset.CACHES, true);
  const flags = view.getUint16(InvalidateOffset.FLAGS, true);
  // PROTOCOL.md: an unknown granularity or cache bit is S_INVAL; so are unknown flags.
  if (
    granularity === null ||
    (caches & ~INVALIDATE_CACHES_MASK) !== 0 ||
    (flags & ~INVALIDATE_FLAGS_MASK) !== 0
  ) {
    return Status.INVAL;
  }
  // Reserved fields must be zero so they can carry meaning in a later revision.
  if (
    view.getUint16(InvalidateOffset.RESERVED1, true) !== 0 ||
    view.getUint32(InvalidateOffset.RESERVED2, true) !== 0
  ) {
    return Status.INVAL;
  }
  for (let i = InvalidateOffset.RESERVED3; i < RequestSize.INVALIDATE; i++)
    if (bytes[i] !== 0) return Status.INVAL;
  const granule = bytes[InvalidateOffset.GRANULE]!;
  // A page of 2^64 bytes or more cannot be described by a 64-bit address.
  if (granularity === 'va' && granule > 63) return Status.INVAL;
  const domainId = view.getUint32(InvalidateOffset.DOMAIN, true);
  if (!state.domainInRange(domainId)) return Status.RANGE;
  // PROTOCOL.md: INVALIDATE on an unknown domain is S_NOENT.
  const domain = state.domains.get(domainId);
  if (domain === undefined) return Status.NOENT;
  // Only a table domain has guest tables whose caches can go stale.
  if (domain.table === null) return Status.INVAL;
  const request: NestedInvalidation = {
    granularity,
    caches: {
      iotlb: (caches & InvalidateCache.IOTLB) !== 0,
      devIotlb: (caches & InvalidateCache.DEV_IOTLB) !== 0,
      pasid: (caches & InvalidateCache.PASID) !== 0,
    },
    leaf: (flags & InvalidateFlag.LEAF) !== 0,
    virtStart: view.getBigUint64(InvalidateOffset.VIRT_START, true),
    nrPages: view.getBigUint64(InvalidateOffset.NR_PAGES, true),
    granule,
  };
  if ((flags & InvalidateFlag.PASID) !== 0) request.pasid = view.getUint32(InvalidateOffset.PASID, true);
  if ((flags & InvalidateFlag.ARCHID) !== 0)
    request.archid = view.getBigUint64(InvalidateOffset.ARCHID, true);
  try {
    domain.table.invalidate(request);
  } catch {
    return Status.DEVERR;
  }
  if (state.emitter.listenerCount('invalidate') > 0) {
    state.emitter.emit('invalidate', { domain: domainId, invalidation: request });
  }
  return Status.OK;
}

/** The formats an endpoint is offered: every registered one, or the subset its options name. */
export function endpointFormats(
  registry: NestedBackendRegistry | null,
  endpointId: number,
  only: readonly number[] | null,
): NestedFormatDescription[] {
  if (registry === null) return [];
  return registry.describe(endpointId).filter((d) => only === null || only.includes(d.format));
}
