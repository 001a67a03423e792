import {
  type DeviceQueue,
  featureBit,
  type TranslationStep,
  TypedEmitter,
  type VirtioActivation,
  type VirtioDevice,
  VirtioFeature,
  VmmError,
} from '@vmmkit/core';
import {
  CONFIG_SIZE,
  ConfigOffset,
  EventQueue,
  IommuFeature,
  RequestQueue,
  VIRTIO_IOMMU_DEVICE_ID,
} from '../protocol/constants.js';
import { hi32, lo32 } from '../protocol/u64.js';
import { Endpoint } from './domains.js';
import type { VirtioIommuEvents } from './events.js';
import { explainTranslation } from './explain.js';
import { FaultReporter, type FaultStats } from './fault-reporter.js';
import { IommuState } from './iommu-state.js';
import { endpointFormats } from './nested.js';
import { type ResolvedOptions, resolveOptions, type VirtioIommuDeviceOptions } from './options.js';
import { buildProbeAnswers, type ProbeAnswers } from './probe.js';
import { RequestHandler } from './request-handler.js';
import {
  checkTranslateRequest,
  type DmaTranslation,
  type TranslateRequest,
  translateRange,
} from './translate-range.js';
import { createPageTranslation, type PageTranslation, Translator } from './translator.js';

/** vmmkit's virtio vendor ID ("VMMK"). */
export const VMMKIT_VENDOR_ID = 0x4b4d4d56;
/** Requests handled per notification at most, so a driver refilling the ring cannot pin the host. */
const MAX_REQUESTS_PER_NOTIFY = 65536;

/**
 * The virtio-iommu device, host side (virtio 1.2 §5.13 plus vmmkit's nested extension,
 * docs/PROTOCOL.md). A transport (virtio-mmio) drives it; endpoint devices ask it to translate
 * their DMA with `translate` or the allocation-free `translatePage`.
 */
export class VirtioIommuDevice extends TypedEmitter<VirtioIommuEvents> implements VirtioDevice<DeviceQueue> {
  readonly name: string;
  readonly deviceId = VIRTIO_IOMMU_DEVICE_ID;
  readonly vendorId = VMMKIT_VENDOR_ID;
  readonly queueMaxSizes: readonly number[];
  readonly deviceFeatures: bigint;
  readonly configSize = CONFIG_SIZE;
  /** Every buffer of the request queue is a request to handle now: a polling host may watch it. */
  readonly busyPollQueues: readonly number[] = [RequestQueue];
  private config: ResolvedOptions;
  private readonly input: VirtioIommuDeviceOptions;
  private readonly endpointList: Endpoint[];
  private readonly state: IommuState;
  private readonly handler: RequestHandler;
  private readonly faults = new FaultReporter();
  private readonly translator: Translator;
  private readonly scratch = createPageTranslation();
  private readonly configBytes = new Uint8Array(CONFIG_SIZE);
  private readonly configView = new DataView(this.configBytes.buffer);
  private activation: VirtioActivation<DeviceQueue> | null = null;
  private requestq: DeviceQueue | null = null;

  constructor(options: VirtioIommuDeviceOptions) {
    super();
    const config = resolveOptions(options);
    this.input = options;
    this.config = config;
    this.name = config.name;
    this.queueMaxSizes = [config.queueSize, config.queueSize];
    this.deviceFeatures =
      config.offered |
      featureBit(VirtioFeature.VERSION_1) |
      (config.eventIdx ? featureBit(VirtioFeature.EVENT_IDX) : 0n) |
      (config.indirectDesc ? featureBit(VirtioFeature.INDIRECT_DESC) : 0n);
    this.endpointList = config.endpoints.map(
      (e) => new Endpoint(e, endpointFormats(config.nestedBackends, e.id, e.tableFormats)),
    );
    const answers = this.probeAnswers(config);
    this.state = new IommuState(config, this, this.endpointList);
    this.handler = new RequestHandler(this.state, answers, config.probeSize);
    this.translator = new Translator(this.state, this.faults);
    this.writeConfigSpace();
  }

  /** PROBE answers of every endpoint for `config` (throws when they do not fit its probe_size). */
  private probeAnswers(config: ResolvedOptions): Map<Endpoint, ProbeAnswers> {
    const probeOffered = (config.offered & (1n << BigInt(IommuFeature.PROBE))) !== 0n;
    const answers = new Map<Endpoint, ProbeAnswers>();
    for (const endpoint of this.endpointList) {
      answers.set(
        endpoint,
        buildProbeAnswers(endpoint.config, endpoint.formats, config.probeSize, probeOffered),
      );
    }
    return answers;
  }

  /**
   * Changes configuration fields from the VMM. Allowed while no driver runs (before DRIVER_OK or
   * after a reset), because a driver reads them once at probe time. Nothing changes on error.
   */
  configure(
    changes: Pick<
      VirtioIommuDeviceOptions,
      'pageSizeMask' | 'inputRange' | 'domainRange' | 'probeSize' | 'bypass'
    >,
  ): void {
    if (this.activation !== null) {
      throw new VmmError(
        'EBUSY',
        'the driver is running; change the configuration before DRIVER_OK or after a device reset (use setBypass for bypass)',
      );
    }
    const next = resolveOptions({ ...this.input, ...this.current(), ...changes });
    const answers = this.probeAnswers(next);
    this.config = next;
    this.state.setGeometry(next);
    if (changes.bypass !== undefined) this.state.bypass = next.bypass;
    this.handler.probeAnswers = answers;
    this.handler.probeSize = next.probeSize;
    this.writeConfigSpace();
  }

  /** The configuration fields as options. */
  private current(): VirtioIommuDeviceOptions {
    const c = this.config;
    return {
      ...this.input,
      pageSizeMask: c.pageSizeMask,
      inputRange: { start: c.inputStart, end: c.inputEnd },
      domainRange: { start: c.domainStart, end: c.domainEnd },
      probeSize: c.probeSize,
    };
  }

  // --- configuration space (virtio 1.2 §5.13.4) ---

  private writeConfigSpace(): void {
    const v = this.configView;
    const c = this.config;
    v.setUint32(ConfigOffset.PAGE_SIZE_MASK, lo32(c.pageSizeMask), true);
    v.setUint32(ConfigOffset.PAGE_SIZE_MASK + 4, hi32(c.pageSizeMask), true);
    v.setUint32(ConfigOffset.INPUT_START, lo32(c.inputStart), true);
    v.setUint32(ConfigOffset.INPUT_START + 4, hi32(c.inputStart), true);
    v.setUint32(ConfigOffset.INPUT_END, lo32(c.inputEnd), true);
    v.setUint32(ConfigOffset.INPUT_END + 4, hi32(c.inputEnd), true);
    v.setUint32(ConfigOffset.DOMAIN_START, c.domainStart, true);
    v.setUint32(ConfigOffset.DOMAIN_END, c.domainEnd, true);
    v.setUint32(ConfigOffset.PROBE_SIZE, c.probeSize, true);
    // virtio 1.2 §5.13.4.2: the device MUST NOT present a bypass value other than 0 or 1.
    v.setUint8(ConfigOffset.BYPASS, this.state.bypass ? 1 : 0);
  }

  readConfig(offset: number, size: 1 | 2 | 4): number {
    if (!Number.isInteger(offset) || offset < 0 || offset + size > CONFIG_SIZE) return 0;
    const v = this.configView;
    return size === 1
      ? v.getUint8(offset)
      : size === 2
        ? v.getUint16(offset, true)
        : v.getUint32(offset, true);
  }

  writeConfig(offset: number, size: 1 | 2 | 4, value: number): void {
    // virtio 1.2 §5.13.4.1: the driver may write only `bypass`, only with F_BYPASS_CONFIG
    // negotiated; anything else is ignored. Bits 1-7 of the byte are ignored.
    if (offset !== ConfigOffset.BYPASS || size !== 1 || !this.state.bypassConfigOn) return;
    this.state.bypass = (value & 1) === 1;
    this.configView.setUint8(ConfigOffset.BYPASS, this.state.bypass ? 1 : 0);
  }

  /** Sets `bypass` from the VMM (e.g. a boot-bypass switch); the driver sees a config change. */
  setBypass(bypass: boolean): void {
    this.state.bypass = bypass === true;
    this.configView.setUint8(ConfigOffset.BYPASS, this.state.bypass ? 1 : 0);
    this.activation?.configChanged?.();
  }

  get bypass(): boolean {
    return this.state.bypass;
  }

  // --- virtio lifecycle ---

  acceptFeatures(features: bigint): boolean {
    // virtio 1.2 §2.2.1: the driver accepts only offered features.
    if ((features & ~this.deviceFeatures) !== 0n) return false;
    this.state.setNegotiated(features);
    return true;
  }

  activate(activation: VirtioActivation<DeviceQueue>): void {
    this.activation = activation;
    this.state.setNegotiated(activation.features);
    const has = (bit: number) => (activation.features & (1n << BigInt(bit))) !== 0n;
    this.handler.memory = activation.memory;
    this.handler.mapUnmapOn = has(IommuFeature.MAP_UNMAP);
    this.handler.probeOn = has(IommuFeature.PROBE);
    this.requestq = activation.queues[RequestQueue] ?? null;
    const eventq = activation.queues[EventQueue] ?? null;
    this.faults.attach(eventq, eventq === null ? null : () => activation.notifyUsed(EventQueue));
  }

  notify(queueIndex: number): void {
    // Event-queue kicks only mean new buffers; reports are written when faults happen.
    if (queueIndex === RequestQueue) this.processRequests();
  }

  private processRequests(): void {
    const queue = this.requestq;
    const activation = this.activation;
    if (queue === null || activation === null) return;
    const handler = this.handler;
    let handled = 0;
    // Suppress kicks while draining, then re-check so a request added meanwhile is not lost.
    do {
      queue.enableNotifications(false);
      while (handled < MAX_REQUESTS_PER_NOTIFY) {
        const r = queue.pop();
        if (r === null) break;
        handled++;
        if (r.ok) queue.pushUsed(r.chain.head, handler.handle(r.chain));
        else {
          // virtio 1.2 §2.7: a malformed chain goes back unwritten.
          handler.unanswered++;
          queue.pushUsed(r.head, 0);
        }
      }
      queue.enableNotifications(true);
    } while (handled < MAX_REQUESTS_PER_NOTIFY && queue.hasAvailable());
    if (queue.needsInterrupt()) activation.notifyUsed(RequestQueue);
    if (queue.broken) {
      const reason = `request queue broken: ${queue.brokenBecause ?? 'unknown'}`;
      activation.needsReset(reason);
      this.emit('broken', reason);
    }
  }

  reset(): void {
    // virtio 1.2 §5.13.5 / reference §3.10: every endpoint detached, every domain destroyed,
    // `bypass` keeps its value.
    this.state.reset();
    this.activation = null;
    this.requestq = null;
    this.handler.memory = null;
    this.handler.mapUnmapOn = false;
    this.handler.probeOn = false;
    this.faults.attach(null, null);
    this.emit('reset');
  }

  /** System reset: a device reset, and `bypass` back to its initial value (virtio 1.2 §5.13.4.2). */
  systemReset(): void {
    this.reset();
    this.state.bypass = this.config.bypass;
    this.writeConfigSpace();
  }

  // --- DMA translation ---

  /**
   * Translates one page of a DMA without allocating: `iova` as a safe integer, `access` a
   * `DmaAccess`, `pasid` or `NO_PASID`. Returns `true` with `out` filled, or `false` after the
   * fault went to the event queue (`out.reason`, `out.flags`).
   */
  translatePage(
    endpoint: number,
    pasid: number,
    iova: number,
    access: number,
    out: PageTranslation,
  ): boolean {
    const hi = Math.floor(iova / 0x1_0000_0000);
    return this.translator.translate(endpoint, pasid, iova >>> 0, hi >>> 0, access, out);
  }

  /**
   * `translatePage` for the first byte of IOVA page `iovaPage` (IOVA / 4096, any 64-bit IOVA as
   * an exact safe integer): the DMA engines' per-page call, served from a page cache when it can.
   */
  translateIovaPage(
    endpoint: number,
    pasid: number,
    iovaPage: number,
    access: number,
    out: PageTranslation,
  ): boolean {
    return this.translator.translatePage(endpoint, pasid, iovaPage, access, out);
  }

  /**
   * Translates up to `count` consecutive IOVA pages from `firstPage` into `pas` (guest-physical
   * addresses of the pages, from index 0) and returns how many translated. It stops at the first
   * page that does not translate, or is not one translation over all of its 4 KiB, and reports
   * no fault for it: translate that page with `translateIovaPage` when the DMA reaches it (that
   * one reports). For devices that know how far their DMA goes: one call a run of pages.
   */
  translateIovaPages(
    endpoint: number,
    pasid: number,
    firstPage: number,
    count: number,
    access: number,
    pas: Float64Array,
  ): number {
    return this.translator.translatePages(endpoint, pasid, firstPage, count, access, pas);
  }

  /** `translatePage` for a 64-bit IOVA given as 32-bit halves. */
  translatePageHalves(
    endpoint: number,
    pasid: number,
    iovaLo: number,
    iovaHi: number,
    access: number,
    out: PageTranslation,
  ): boolean {
    return this.translator.translate(endpoint, pasid, iovaLo >>> 0, iovaHi >>> 0, access, out);
  }

  /**
   * Translates a whole DMA, which may span several mappings or pages: the guest-physical segments
   * in order, or the first fault (reported on the event queue). Checks its arguments (VmmError).
   */
  translate(request: TranslateRequest): DmaTranslation {
    return translateRange(this.translator, this.scratch, request);
  }

  /**
   * Every decision a translation takes (endpoint, domain, reserved region, mapping or guest-table
   * walk, result), without reporting a fault. Checks its arguments like `translate`.
   */
  explain(request: Omit<TranslateRequest, 'length'>): TranslationStep[] {
    const { endpoint, pasid, iova, access } = checkTranslateRequest({ ...request, length: 1 });
    return explainTranslation(this.state, this.translator, endpoint, pasid, iova, access);
  }

  // --- introspection ---

  /** Event-queue counters: faults raised, delivered, dropped. */
  get faultStats(): Readonly<FaultStats> {
    return this.faults.stats;
  }

  /** Requests answered per status (index = status), and those returned with used length 0. */
  get requestStats(): { byStatus: readonly number[]; unanswered: number } {
    return { byStatus: Array.from(this.handler.statusCounts), unanswered: this.handler.unanswered };
  }

  /** Live domains: id → kind, endpoints and mapping count. */
  domains(): { id: number; kind: string; endpoints: number[]; mappings: number; format?: number }[] {
    return [...this.state.domains.values()].map((d) => ({
      id: d.id,
      kind: d.kind,
      endpoints: d.endpoints.map((e) => e.id),
      mappings: d.mappings?.size ?? 0,
      ...(d.kind === 'table' ? { format: d.format } : {}),
    }));
  }

  /** The domain an endpoint is attached to, or `null`; throws ENOENT for an unknown endpoint. */
  endpointDomain(endpoint: number): number | null {
    const e = this.state.endpoints.get(endpoint);
    if (e === undefined)
      throw new VmmError('ENOENT', `endpoint ${endpoint} is not one of this device's endpoints`);
    return e.domain?.id ?? null;
  }

  /** Live mappings over every domain. */
  get mappingCount(): number {
    return this.state.pool.live;
  }

  /** Features the driver negotiated (device-specific bits). */
  get negotiatedFeatures(): bigint {
    return this.state.negotiated;
  }
}

/** Builds a virtio-iommu device (the vmm composes it behind a virtio-mmio transport). */
export function createVirtioIommuDevice(options: VirtioIommuDeviceOptions): VirtioIommuDevice {
  return new VirtioIommuDevice(options);
}
