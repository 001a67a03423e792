/** The driver's options, events and endpoint description. */
import type { GuestMemory, MmioAccessor, NestedFormatDescription, PageAllocator } from '@vmmkit/core';
import { MapFlag } from '../protocol/constants.js';
import type { IgnoredEventReason, IommuFault } from './fault-events.js';
import type { EndpointProbe } from './probe-parser.js';
import type { CompletionWait } from './request-ring.js';

export interface VirtioIommuDriverEvents {
  /** A fault report from the event queue. */
  fault: (fault: IommuFault) => void;
  /** An event buffer came back that is not a valid report (wrong length, reserved bytes set). */
  ignoredEvent: (reason: IgnoredEventReason, usedLength: number) => void;
  /** The device set DEVICE_NEEDS_RESET (virtio 1.2 §2.1.2): requests will fail until `close()` and a new driver. */
  needsReset: () => void;
}

export interface VirtioIommuDriverOptions extends CompletionWait {
  mmio: MmioAccessor;
  /** Guest-physical base of the virtio-mmio window. */
  base: number;
  memory: GuestMemory;
  /** Where rings, request slots, event buffers and (nested) tables come from. */
  allocator: PageAllocator;
  /** Entries of the request queue (default 256, as QEMU and kvmtool). */
  requestQueueSize?: number;
  /** Entries of the event queue, all posted as 24-byte buffers (default 64). */
  eventQueueSize?: number;
  /** Restricts the features asked for (default `DRIVER_FEATURES`). */
  features?: bigint;
  /**
   * Keep the mappings of MAP/UNMAP domains in the driver, as Linux does, and replay them when an
   * endpoint attaches to a domain that had lost its last endpoint (and with it, on the device,
   * its mappings). Costs a tree entry per mapping. Default false.
   */
  keepMappings?: boolean;
  /** The guest's page size (default 4 KiB): MAP domains need a device granule no larger. */
  guestPageSize?: number;
  /**
   * Where nested attach finds the PASID-table vendors and io-pgtable formats plugins registered
   * (`TOKENS.PasidTableLibrary`, `TOKENS.IoPgtableRegistry`), e.g. `createContainer([smmuv3Plugin])`.
   */
  container?: ServiceSource;
}

/** The part of an inversify container the driver uses. */
export interface ServiceSource {
  get<T>(token: symbol): T;
}

/** What PROBE said about an endpoint, with a typed description of each table format offered. */
export interface EndpointInfo {
  id: number;
  probe: EndpointProbe;
  formats: NestedFormatDescription[];
}

/** MAP flags from read/write/mmio permissions. */
export function mapFlags(prot: { read?: boolean; write?: boolean; mmio?: boolean }): number {
  return (prot.read ? MapFlag.READ : 0) | (prot.write ? MapFlag.WRITE : 0) | (prot.mmio ? MapFlag.MMIO : 0);
}
