import type { NestedInvalidation } from '@vmmkit/core';

/** How a domain translates. */
export type DomainKind = 'map' | 'bypass' | 'table';

export interface FaultEvent {
  reason: number;
  flags: number;
  endpoint: number;
  /** The transaction's PASID, when it had one. */
  pasid?: number;
  address: bigint;
  /** Whether the report reached an event-queue buffer (false: dropped and counted). */
  delivered: boolean;
  /** The vendor's own fault record, for nested domains (e.g. an SMMUv3 event). */
  vendorEvent?: unknown;
}

export interface AttachEvent {
  domain: number;
  endpoint: number;
  kind: DomainKind;
  /** Table format, for ATTACH_TABLE. */
  format?: number;
  /** The domain was created by this attach. */
  created: boolean;
}

export interface DetachEvent {
  domain: number;
  endpoint: number;
  /** The domain lost its last endpoint and was destroyed, with its mappings or table. */
  destroyed: boolean;
  /** `implicit` when an ATTACH moved the endpoint, `reset` on device reset. */
  cause: 'request' | 'implicit' | 'reset';
}

export interface MapEvent {
  domain: number;
  virtStart: bigint;
  virtEnd: bigint;
  physStart: bigint;
  flags: number;
}

export interface UnmapEvent {
  domain: number;
  virtStart: bigint;
  virtEnd: bigint;
  /** Mappings removed. */
  removed: number;
}

export interface InvalidateEvent {
  domain: number;
  invalidation: NestedInvalidation;
}

/** Events of `VirtioIommuDevice` (listeners are optional: payloads are built only when someone listens). */
export interface VirtioIommuEvents {
  fault: (event: FaultEvent) => void;
  attach: (event: AttachEvent) => void;
  detach: (event: DetachEvent) => void;
  map: (event: MapEvent) => void;
  unmap: (event: UnmapEvent) => void;
  invalidate: (event: InvalidateEvent) => void;
  /** The driver reset the device: every endpoint detached, every domain destroyed. */
  reset: () => void;
  /** The device entered DEVICE_NEEDS_RESET (e.g. a broken ring). */
  broken: (reason: string) => void;
}
