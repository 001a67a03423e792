import {
  createContainer,
  DmaAccess,
  type DriverQueue,
  featureBit,
  type GuestMemory,
  type NestedBackendRegistry,
  NO_PASID,
  type PageAllocator,
  type PageRegion,
  type Segment,
  TOKENS,
  VirtioFeature,
  VirtioMmioDriver,
  VirtioMmioTransport,
  VmmError,
} from '@vmmkit/core';
import { createMmioBus, createTestMemory, type TestMmioBus } from '@vmmkit/core/testing';
import type { ContainerModule } from 'inversify';
import { VirtioIommuDevice } from '../device/device.js';
import type { IommuFeatureOptions, ReservedRegionOption } from '../device/options.js';
import type { DmaAccessName, DmaFault } from '../device/translate-range.js';
import { createPageTranslation } from '../device/translator.js';
import { VirtioIommuDriver } from '../driver/driver.js';
import { EventQueue, FAULT_REPORT_SIZE, IommuFeature, RequestQueue } from '../protocol/constants.js';
import { decodeFaultReport, type FaultReport } from '../protocol/fault.js';
import { hi32, isU64, joinU64, lo32 } from '../protocol/u64.js';
import { RequestArena } from './request-arena.js';

export interface HarnessEndpoint {
  id: number;
  reservedRegions?: readonly ReservedRegionOption[];
  tableFormats?: readonly number[];
}

export interface VirtioIommuHarnessOptions {
  endpoints?: readonly HarnessEndpoint[];
  pageSizeMask?: bigint;
  inputRange?: { start: bigint; end: bigint };
  domainRange?: { start: number; end: number };
  bypass?: boolean;
  /** Features the device offers (default: what QEMU offers, plus ATTACH_TABLE). */
  features?: IommuFeatureOptions;
  probeSize?: number;
  /** Plugins (e.g. `smmuv3Plugin`) whose nested backends the device offers. */
  plugins?: readonly ContainerModule[];
  /** Guest RAM in bytes (default 32 MiB at 0x4000_0000). */
  memorySize?: number;
  queueSize?: number;
  maxDomains?: number;
  maxMappingsPerDomain?: number;
  maxMappings?: number;
  /** Event buffers to post after DRIVER_OK (default: the queue size, as Linux). */
  eventBuffers?: number;
}

export interface SubmitResult {
  /** Used length the device returned. */
  usedLength: number;
  /** The writable part after completion (it was filled with 0xA5 before submission). */
  written: Uint8Array;
}

export type HarnessTranslation = { ok: true; address: bigint } | { ok: false; fault: DmaFault };

/** What a guest driver needs to talk to the device itself (for the driver model). */
export interface HarnessGuest {
  mmio: TestMmioBus;
  /** Base of the virtio-mmio window. */
  base: number;
  memory: GuestMemory;
  /** Pages for guest tables and rings. */
  allocator: PageAllocator;
  /** RAM the page allocator does not use, free for test buffers. */
  scratch: PageRegion;
  /** The virtio-mmio driver core the harness negotiated with. */
  virtio: VirtioMmioDriver;
  requestQueue: DriverQueue;
  eventQueue: DriverQueue;
  /** Features negotiated (transport bits included). */
  features: bigint;
}

export interface VirtioIommuHarness {
  device: VirtioIommuDevice;
  memory: GuestMemory;
  transport: VirtioMmioTransport;
  guest: HarnessGuest;
  /** Interrupts the transport raised. */
  readonly interrupts: number;
  /** Places one request in the request queue (readable part, writable part), kicks, and returns the reply. */
  submit(request: Uint8Array, writableLength: number): Promise<SubmitResult>;
  /** `submit` with the readable and writable parts split over several descriptors. */
  submitChain(readable: readonly Uint8Array[], writableLengths: readonly number[]): Promise<SubmitResult>;
  /**
   * Synchronous batch: every request with a `writableLength` tail, one kick per queue-full.
   * Writes each request's status into `statuses` (0xff when the used length was 0) and returns it.
   */
  submitBatch(requests: readonly Uint8Array[], writableLength?: number, statuses?: Uint8Array): Uint8Array;
  translate(request: {
    endpoint: number;
    iova: bigint;
    access: DmaAccessName | DmaAccess;
    pasid?: number;
  }): HarnessTranslation;
  /** Collects fault reports from the event queue (and re-posts the buffers). */
  events(): FaultReport[];
  /**
   * The guest driver model (`VirtioIommuDriver`) on this device, created on first access with
   * the harness's MMIO window, memory, allocator and plugins. It resets the device and
   * negotiates for itself, so from then on it owns the queues: `submit*` and `events()` throw
   * `EBUSY` until `restart()` closes it and gives the device back to the harness.
   */
  readonly driver: VirtioIommuDriver;
  /** Resets the device and initialises it again like the Linux driver (new queues in `guest`). */
  restart(): void;
}

const ACCESS: Record<DmaAccessName, DmaAccess> = {
  read: DmaAccess.READ,
  write: DmaAccess.WRITE,
  exec: DmaAccess.EXEC,
};
const isU32 = (v: unknown): v is number =>
  Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffff_ffff;

/** Base of the harness's virtio-mmio window (a typical Arm virt address). */
export const HARNESS_MMIO_BASE = 0x0a00_0000;
const RAM_BASE = 0x4000_0000;

/** Device features a Linux guest asks for (drivers/iommu/virtio-iommu.c), plus the extension. */
export function linuxDriverFeatures(): bigint {
  const bits = [
    IommuFeature.MAP_UNMAP,
    IommuFeature.INPUT_RANGE,
    IommuFeature.DOMAIN_RANGE,
    IommuFeature.PROBE,
    IommuFeature.MMIO,
    IommuFeature.BYPASS_CONFIG,
    IommuFeature.ATTACH_TABLE,
    VirtioFeature.VERSION_1,
    VirtioFeature.EVENT_IDX,
    VirtioFeature.INDIRECT_DESC,
  ];
  return bits.reduce((acc, bit) => acc | featureBit(bit), 0n);
}

/**
 * A virtio-iommu device behind a real virtio-mmio transport, driven through real split
 * virtqueues in guest memory, negotiated like the Linux driver. For conformance suites.
 */
export function createVirtioIommuHarness(options: VirtioIommuHarnessOptions = {}): VirtioIommuHarness {
  const container = createContainer(options.plugins ?? []);
  const registry = container.get<NestedBackendRegistry>(TOKENS.NestedBackendRegistry);
  const { memory, allocator, scratch } = createTestMemory({
    base: RAM_BASE,
    size: options.memorySize ?? 32 << 20,
  });
  const queueSize = options.queueSize ?? 256;
  const device = new VirtioIommuDevice({
    endpoints: options.endpoints ?? [],
    pageSizeMask: options.pageSizeMask,
    inputRange: options.inputRange,
    domainRange: options.domainRange,
    bypass: options.bypass,
    features: options.features,
    probeSize: options.probeSize,
    nestedBackends: registry,
    queueSize,
    maxDomains: options.maxDomains,
    maxMappingsPerDomain: options.maxMappingsPerDomain,
    maxMappings: options.maxMappings,
  });
  let interrupts = 0;
  const transport = new VirtioMmioTransport(device, {
    memory,
    interrupt: { raise: () => void interrupts++ },
  });
  const mmio = createMmioBus();
  mmio.map(HARNESS_MMIO_BASE, transport);
  const virtio = new VirtioMmioDriver(mmio, HARNESS_MMIO_BASE, memory, allocator);
  const arena = new RequestArena(memory, allocator, queueSize);
  const eventCount = Math.min(options.eventBuffers ?? queueSize, queueSize);
  const eventBase = eventCount > 0 ? allocator.alloc(eventCount * FAULT_REPORT_SIZE) : 0;
  const eventSegments: Segment[][] = [];
  for (let i = 0; i < eventCount; i++) {
    eventSegments.push([{ addr: eventBase + i * FAULT_REPORT_SIZE, len: FAULT_REPORT_SIZE }]);
  }
  let requestQueue!: DriverQueue;
  let eventQueue!: DriverQueue;
  const guest = {
    mmio,
    base: HARNESS_MMIO_BASE,
    memory,
    allocator,
    scratch,
    virtio,
  } as Partial<HarnessGuest> as HarnessGuest;

  const page = createPageTranslation();
  /** The guest driver model once someone asked for it; it then owns the device's queues. */
  let driver: VirtioIommuDriver | null = null;
  const ownQueues = (): void => {
    if (driver !== null) {
      throw new VmmError(
        'EBUSY',
        'harness.driver owns the device queues; use the driver, or restart() to give them back to the harness',
      );
    }
  };

  /** The Linux driver's probe: negotiate, set up both queues, post the event buffers. */
  const start = (): void => {
    // The driver model's rings and buffers go back to the allocator before the harness's own.
    driver?.close();
    driver = null;
    const init = virtio.initialize({ wanted: linuxDriverFeatures(), queueSizes: [queueSize, queueSize] });
    requestQueue = init.queues[RequestQueue]!;
    eventQueue = init.queues[EventQueue]!;
    Object.assign(guest, { requestQueue, eventQueue, features: init.features });
    // Linux posts one 24-byte buffer per event-queue entry right after DRIVER_OK.
    for (let i = 0; i < eventCount; i++) eventQueue.add([], eventSegments[i]!, i);
    if (eventCount > 0 && eventQueue.kickNeeded()) virtio.notify(EventQueue);
  };
  start();

  const kick = () => {
    if (requestQueue.kickNeeded()) virtio.notify(RequestQueue);
  };

  const completeOne = (writable: readonly Segment[], writableLength: number): SubmitResult => {
    kick();
    let usedLength = -1;
    requestQueue.collect((_token, len) => {
      usedLength = len;
    });
    if (usedLength < 0) {
      throw new VmmError(
        'EBUSY',
        'the device did not complete the request synchronously (is it in DEVICE_NEEDS_RESET?)',
      );
    }
    const written = new Uint8Array(writableLength);
    let at = 0;
    for (const s of writable) {
      written.set(memory.read(s.addr, s.len), at);
      at += s.len;
    }
    return { usedLength, written };
  };

  const submitChain = async (readable: readonly Uint8Array[], writableLengths: readonly number[]) => {
    ownQueues();
    const { readSegments, writeSegments, writableLength } = arena.placeChain(readable, writableLengths);
    requestQueue.add(readSegments, writeSegments, 'submit');
    return completeOne(writeSegments, writableLength);
  };

  const submitBatch = (
    requests: readonly Uint8Array[],
    writableLength = 4,
    statuses?: Uint8Array,
  ): Uint8Array => {
    ownQueues();
    const out = statuses ?? new Uint8Array(requests.length);
    if (out.length < requests.length) {
      throw new VmmError('EINVAL', `statuses holds ${out.length} entries for ${requests.length} requests`);
    }
    let next = 0;
    while (next < requests.length) {
      // Two descriptors per request: a queue of N entries holds N / 2 of them at once.
      const count = Math.min(requests.length - next, Math.max(1, arena.slots >> 1));
      for (let i = 0; i < count; i++) {
        const slot = arena.placeSlot(i, requests[next + i]!, writableLength);
        requestQueue.add(slot.readable, slot.writable, next + i);
      }
      kick();
      requestQueue.collect((token, len) => {
        const index = token as number;
        out[index] = len === 0 ? 0xff : arena.slotStatus(index - next, len);
      });
      next += count;
    }
    return out;
  };

  return {
    device,
    memory,
    transport,
    guest,
    restart: start,
    get interrupts() {
      return interrupts;
    },
    get driver() {
      driver ??= new VirtioIommuDriver({ mmio, base: HARNESS_MMIO_BASE, memory, allocator, container });
      return driver;
    },
    submit: (request, writableLength) => submitChain([request], [writableLength]),
    submitChain,
    submitBatch,
    translate(request) {
      const { endpoint, iova } = request;
      const pasid = request.pasid ?? NO_PASID;
      const access = typeof request.access === 'string' ? ACCESS[request.access] : request.access;
      // Conformance suites translate by the hundred thousand (the Linux replay: 77,682), so
      // well-formed calls take the device's allocation-free page path; anything else goes
      // through `device.translate`, which checks its arguments and throws the VmmError.
      if (
        !isU64(iova) ||
        !isU32(endpoint) ||
        (pasid !== NO_PASID && !(isU32(pasid) && pasid <= 0xf_ffff)) ||
        (access !== DmaAccess.READ && access !== DmaAccess.WRITE && access !== DmaAccess.EXEC)
      ) {
        const result = device.translate({ ...request, length: 1 });
        return result.ok
          ? { ok: true, address: result.segments[0]!.address }
          : { ok: false, fault: result.fault };
      }
      if (device.translatePageHalves(endpoint, pasid, lo32(iova), hi32(iova), access, page)) {
        return { ok: true, address: joinU64(page.paLo, page.paHi) };
      }
      // The same fault `device.translate` returns (the report already went to the event queue).
      const fault: DmaFault = { reason: page.reason, flags: page.flags, endpoint, address: iova };
      if (pasid !== NO_PASID) fault.pasid = pasid;
      if (page.vendorEvent !== null) fault.vendorEvent = page.vendorEvent;
      return { ok: false, fault };
    },
    events() {
      ownQueues();
      const reports: FaultReport[] = [];
      eventQueue.collect((token, len) => {
        const index = token as number;
        const segment = eventSegments[index]!;
        if (len === FAULT_REPORT_SIZE) {
          const report = decodeFaultReport(memory.read(segment[0]!.addr, FAULT_REPORT_SIZE));
          if (report !== null) reports.push(report);
        }
        eventQueue.add([], segment, index);
      });
      if (eventQueue.kickNeeded()) virtio.notify(EventQueue);
      return reports;
    },
  };
}
