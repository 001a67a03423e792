/**
 * The guest driver of virtio-iommu (Linux drivers/iommu/virtio-iommu.c in spirit): runs as guest
 * code, synchronously, touching the device only through MMIO and guest memory.
 */
import {
  DeviceStatus,
  featureBit,
  type GuestMemory,
  hex,
  PAGE_SIZE,
  type PageAllocator,
  TypedEmitter,
  VirtioMmioDriver,
  VirtioMmioInterrupt,
  VmmError,
} from '@vmmkit/core';
import { ATTACH_F_BYPASS, ConfigOffset, EventQueue, MapFlag, RequestQueue } from '../protocol/constants.js';
import { type BatchLimits, IommuBatch, type MappingObserver } from './batch.js';
import { type IommuConfig, type IommuFeatures, startIommu } from './config.js';
import { type DomainKind, DomainRegistry } from './domain-registry.js';
import {
  type EndpointInfo,
  mapFlags,
  type ServiceSource,
  type VirtioIommuDriverEvents,
  type VirtioIommuDriverOptions,
} from './driver-options.js';
import { EndpointProber } from './endpoint-probe.js';
import { FaultQueue, type IgnoredEventReason, type IommuFault } from './fault-events.js';

import { identityRanges } from './identity-map.js';
import type { KeptMapping } from './kept-mappings.js';
import { type AttachPasidTableOptions, attachPasidTable, type NestedPasidDomain } from './nested-pasid.js';
import {
  type AttachPageTableOptions,
  attachPageTable,
  type NestedPageTableDomain,
} from './nested-pgtable.js';
import { type CompletionWait, RequestRing } from './request-ring.js';

export type { DomainKind, EndpointInfo, ServiceSource, VirtioIommuDriverEvents, VirtioIommuDriverOptions };
export { mapFlags };

export class VirtioIommuDriver extends TypedEmitter<VirtioIommuDriverEvents> {
  /** Negotiated feature bits, transport bits included. */
  readonly featureBits: bigint;
  readonly features: IommuFeatures;
  readonly config: IommuConfig;
  readonly memory: GuestMemory;
  readonly allocator: PageAllocator;
  readonly transport: VirtioMmioDriver;
  readonly container: ServiceSource | undefined;
  private readonly guestPageSize: number;
  private readonly ring: RequestRing;
  private readonly faults: FaultQueue;
  private readonly limits: BatchLimits;
  private readonly domains: DomainRegistry;
  private readonly prober: EndpointProber;
  private eventsPending = false;
  private readonly keepMappings: boolean;
  /** Keeps the mappings of `keepMappings` domains in step with what the device accepted. */
  private readonly observer: MappingObserver | null;
  private closed = false;
  private singleBatch: IommuBatch | null = null;
  private readonly sink = {
    fault: (fault: IommuFault) => this.emit('fault', fault),
    ignored: (reason: IgnoredEventReason, len: number) => this.emit('ignoredEvent', reason, len),
  };

  /** Probes the device at `base`, negotiates, reads the configuration, sets up both queues. */
  constructor(options: VirtioIommuDriverOptions) {
    super();
    const { mmio, base, memory, allocator } = options;
    this.memory = memory;
    this.allocator = allocator;
    this.container = options.container;
    this.guestPageSize = options.guestPageSize ?? PAGE_SIZE;
    this.keepMappings = options.keepMappings ?? false;
    this.observer = this.keepMappings
      ? {
          mapped: (domain, start, end, phys, flags) =>
            this.domains.find(domain)?.kept?.mapped(start, end, phys, flags),
          unmapped: (domain, start, end) => this.domains.find(domain)?.kept?.unmapped(start, end),
        }
      : null;
    this.transport = new VirtioMmioDriver(mmio, base, memory, allocator);
    const started = startIommu(this.transport, options);
    const { queues } = started;
    this.featureBits = started.featureBits;
    this.features = started.features;
    this.config = started.config;
    this.limits = {
      granule: this.config.granule,
      inputStart: this.config.inputRange.start,
      inputEnd: this.config.inputRange.end,
      mmio: this.features.mmio,
      bypassConfig: this.features.bypassConfig,
      attachTable: this.features.attachTable,
    };
    this.domains = new DomainRegistry(this.config.domainRange.start, this.config.domainRange.end);
    const wait: CompletionWait = {
      wait: options.wait,
      maxWaits: options.maxWaits,
      timeoutMs: options.timeoutMs,
      pollSpins: options.pollSpins,
    };
    this.ring = new RequestRing(
      memory,
      allocator,
      queues[RequestQueue]!,
      () => this.transport.notify(RequestQueue),
      wait,
      {
        afterWait: () => this.acknowledge(),
        afterSubmit: () => {
          if (this.eventsPending) this.processEvents();
        },
      },
    );
    this.faults = new FaultQueue(
      memory,
      allocator,
      queues[EventQueue]!,
      () => this.transport.notify(EventQueue),
      this.features.attachTable,
    );
    this.faults.start();
    this.prober = new EndpointProber(this.ring, this.features, this.config);
  }

  /** Whether a feature bit (device or transport) was negotiated. */
  hasFeature(bit: number): boolean {
    return (this.featureBits & featureBit(bit)) !== 0n;
  }

  /** A new batch (room for `expected` requests, default 64; it grows): queue requests, then `submit()` sends them with one notification per queue-full. */
  batch(expected?: number): IommuBatch {
    return new IommuBatch(this.ring, this.limits, expected, this.observer);
  }

  /**
   * The batch behind the one-request calls (`map`, `unmap`, `attach`, `detach`), kept so that a
   * request costs no buffer allocation. Safe to share: a batch is empty again once `submit`
   * returns, and a listener that submits from inside a submit is refused by the ring (EBUSY).
   */
  private single(): IommuBatch {
    this.singleBatch ??= this.batch(1);
    // A call that threw while queueing must not leave its request for the next one.
    this.singleBatch.clear();
    return this.singleBatch;
  }

  /** Writes the global `bypass` field (virtio 1.2 §5.13.4.2: only with BYPASS_CONFIG). */
  setBypass(enabled: boolean): void {
    if (!this.features.bypassConfig) {
      throw new VmmError(
        'ENOSYS',
        'the bypass config field needs VIRTIO_IOMMU_F_BYPASS_CONFIG, which was not negotiated',
      );
    }
    this.transport.writeConfig8(ConfigOffset.BYPASS, enabled ? 1 : 0);
    this.config.bypass = enabled;
  }

  /** PROBE for an endpoint (cached). Without F_PROBE the endpoint has no properties. */
  probeEndpoint(endpoint: number): EndpointInfo {
    return this.prober.probe(endpoint);
  }

  /** Allocates a domain ID within `domain_range`; the device creates the domain at the first attach. */
  createDomain(kind: DomainKind = 'paging'): number {
    if (kind === 'bypass' && !this.features.bypassConfig) {
      throw new VmmError(
        'ENOSYS',
        'bypass domains need VIRTIO_IOMMU_F_BYPASS_CONFIG, which was not negotiated',
      );
    }
    if (kind === 'nested') {
      throw new VmmError('EINVAL', 'nested domains come from attachPasidTable() or attachPageTable()');
    }
    const mapped = kind === 'paging' || (kind === 'identity' && !this.features.bypassConfig);
    if (mapped && !this.features.mapUnmap) {
      throw new VmmError('ENOSYS', `${kind} domains need VIRTIO_IOMMU_F_MAP_UNMAP, which was not negotiated`);
    }
    // Linux viommu_domain_finalise: a granule above the guest page size cannot back DMA mappings.
    if (mapped && this.config.granule > BigInt(this.guestPageSize)) {
      throw new VmmError(
        'EINVAL',
        `the device granule ${hex(this.config.granule)} is larger than the guest page size ${hex(this.guestPageSize)}`,
        { granule: this.config.granule, guestPageSize: this.guestPageSize },
      );
    }
    return this.domains.create(kind, this.keepMappings);
  }

  /** Mappings the driver keeps for a domain (`keepMappings`), in address order. */
  keptMappings(domain: number): KeptMapping[] {
    return this.domains.record(domain).kept?.list() ?? [];
  }

  /** Releases a domain ID; the domain must have no endpoint left. */
  destroyDomain(domain: number): void {
    this.domains.destroy(domain);
  }

  /** Kind and endpoints of a domain. */
  domainInfo(domain: number): { kind: DomainKind; endpoints: number[] } {
    const record = this.domains.record(domain);
    return { kind: record.kind, endpoints: [...record.endpoints].sort((a, b) => a - b) };
  }

  /** The domain an endpoint is attached to, if any. */
  domainOf(endpoint: number): number | undefined {
    return this.domains.domainOf(endpoint);
  }

  /**
   * Attaches an endpoint (PROBE first, as virtio 1.2 §5.13.6.8 recommends). An endpoint attached
   * elsewhere moves (the device detaches it implicitly). Identity domains without BYPASS_CONFIG
   * get guest RAM mapped 1:1, minus the endpoint's reserved regions; with `keepMappings`, a
   * domain that had lost its last endpoint gets its mappings replayed.
   */
  attach(endpoint: number, domain: number): void {
    const record = this.domains.record(domain);
    if (record.kind === 'nested') {
      throw new VmmError(
        'EINVAL',
        `domain ${domain} is nested: attach endpoints with the nested domain's attach()`,
      );
    }
    const info = this.probeEndpoint(endpoint);
    const useBypassFlag =
      record.kind === 'bypass' || (record.kind === 'identity' && this.features.bypassConfig);
    // The device creates the domain anew when it has no endpoint (virtio 1.2 §5.13.6.3), empty.
    const created = record.endpoints.size === 0;
    const batch = this.single().attach(domain, endpoint, useBypassFlag ? ATTACH_F_BYPASS : 0);
    batch.submit().throwIfFailed();
    this.domains.attached(endpoint, domain);
    if (created && record.kept !== null && record.kept.size > 0) {
      const kept = record.kept.list();
      const replay = this.batch(kept.length);
      for (const m of kept) replay.map(domain, m.start, m.phys, m.end - m.start + 1n, m.flags);
      replay.submit().throwIfFailed();
    }
    if (record.kind === 'identity' && !useBypassFlag && !record.identityMapped) {
      const ranges = identityRanges(
        this.memory,
        info.probe.reservedRegions,
        this.config.granule,
        this.config.inputRange,
      );
      const maps = this.batch(ranges.length);
      for (const [lo, hi] of ranges) maps.map(domain, lo, lo, hi - lo, MapFlag.READ | MapFlag.WRITE);
      maps.submit().throwIfFailed();
      record.identityMapped = true;
    }
  }

  /** Detaches an endpoint from its domain; a domain that loses its last endpoint loses its mappings. */
  detach(endpoint: number): void {
    const domain = this.domains.domainOf(endpoint);
    if (domain === undefined) throw new VmmError('ENOENT', `endpoint ${endpoint} is not attached`);
    this.single().detach(domain, endpoint).submitOrThrow();
    this.domains.detached(endpoint);
  }

  /** MAP one range; throws the typed error of a refused request. */
  map(
    domain: number,
    iova: bigint | number,
    phys: bigint | number,
    size: bigint | number,
    prot?: { read?: boolean; write?: boolean; mmio?: boolean },
  ): void {
    const flags = prot === undefined ? MapFlag.READ | MapFlag.WRITE : mapFlags(prot);
    this.single().map(domain, iova, phys, size, flags).submitOrThrow();
  }

  /** UNMAP a range; throws the typed error of a refused request. */
  unmap(domain: number, iova: bigint | number, size: bigint | number): void {
    this.single().unmap(domain, iova, size).submitOrThrow();
  }

  /**
   * Attaches `endpoint` to a new domain holding a guest PASID table built with the container's
   * PASID-table vendor, one io-pgtable per PASID (needs ATTACH_TABLE and the `container` option).
   */
  attachPasidTable(endpoint: number, options: AttachPasidTableOptions): NestedPasidDomain {
    return attachPasidTable(this, endpoint, options);
  }

  /** Attaches `endpoint` to a new domain holding one guest page table without PASIDs. */
  attachPageTable(endpoint: number, options: AttachPageTableOptions): NestedPageTableDomain {
    return attachPageTable(this, endpoint, options);
  }

  /**
   * Reads the interrupt status, acknowledges it, and handles the event queue. Requests are
   * polled by the submitter, so the used-buffer bit only matters for faults here.
   */
  handleInterrupt(): number {
    this.acknowledge();
    return this.eventsPending ? this.processEvents() : 0;
  }

  /** Handles every fault report the device returned, re-posting each buffer; returns how many. */
  processEvents(): number {
    this.eventsPending = false;
    return this.faults.process(this.sink);
  }

  /**
   * Reads and acknowledges the interrupt status, so the line drops while a batch waits; events
   * are noted and handled once the batch is done (a listener may then send requests itself).
   */
  private acknowledge(): void {
    const status = this.transport.interruptStatus();
    if (status === 0) return;
    this.transport.ackInterrupt(status);
    // virtio 1.2 §4.2.2: the used-buffer bit means "check every active queue".
    if ((status & VirtioMmioInterrupt.USED_BUFFER) !== 0) this.eventsPending = true;
    // virtio 1.2 §2.1.2: DEVICE_NEEDS_RESET comes with a configuration change notification.
    if (
      (status & VirtioMmioInterrupt.CONFIG_CHANGE) !== 0 &&
      (this.transport.status() & DeviceStatus.DEVICE_NEEDS_RESET) !== 0
    ) {
      this.emit('needsReset');
    }
  }

  /**
   * Resets the device (every endpoint detached, every domain gone, virtio 1.2 §5.13.6) and frees
   * the rings, request slots and event buffers. The driver cannot be used afterwards.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.transport.reset();
    this.ring.release();
    this.faults.release();
    this.domains.clear();
  }

  /** Records an attach that succeeded (for the nested domains): the implicit move included. */
  noteAttached(endpoint: number, domain: number): void {
    this.domains.attached(endpoint, domain);
  }

  /** Records a detach that succeeded (for the nested domains). */
  noteDetached(endpoint: number): void {
    this.domains.detached(endpoint);
  }

  /** Registers a domain created by an extension (the nested code) under a fresh ID. */
  allocateDomain(kind: DomainKind): number {
    return this.domains.create(kind);
  }
}
