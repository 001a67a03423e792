/**
 * The event queue as the driver keeps it: 24-byte device-writable buffers posted up front,
 * each read and posted again when the device returns it (virtio 1.2 §5.13.7).
 */
import type { DriverQueueApi, GuestMemory, PageAllocator, Segment } from '@vmmkit/core';
import { FAULT_REPORT_SIZE, FaultFlag, FaultReason } from '../protocol/constants.js';
import { decodeFaultReport } from '../protocol/fault.js';

export type FaultReasonName =
  | 'unknown'
  | 'domain'
  | 'mapping'
  | 'walk-eabt'
  | 'pte-fetch'
  | 'permission'
  | 'access'
  | 'oor-address';

const REASON_NAMES: Readonly<Record<number, FaultReasonName>> = {
  [FaultReason.UNKNOWN]: 'unknown',
  [FaultReason.DOMAIN]: 'domain',
  [FaultReason.MAPPING]: 'mapping',
  [FaultReason.WALK_EABT]: 'walk-eabt',
  [FaultReason.PTE_FETCH]: 'pte-fetch',
  [FaultReason.PERMISSION]: 'permission',
  [FaultReason.ACCESS]: 'access',
  [FaultReason.OOR_ADDRESS]: 'oor-address',
};

/** A fault the device reported for an endpoint's access. */
export interface IommuFault {
  /** Reasons the driver does not know (and nested ones without the extension) are `unknown`. */
  reason: FaultReasonName;
  rawReason: number;
  read: boolean;
  write: boolean;
  exec: boolean;
  /** All flag bits as reported. */
  flags: number;
  endpoint: number;
  /** Faulting address, when the device gave one (F_ADDRESS). */
  address?: bigint;
  /** Faulting PASID, when the extension is negotiated and the device gave one (F_PASID). */
  pasid?: number;
}

/** Why a returned event buffer was not turned into a fault. */
export type IgnoredEventReason = 'length' | 'reserved';

export interface FaultQueueSink {
  fault(fault: IommuFault): void;
  ignored(reason: IgnoredEventReason, usedLength: number): void;
}

export class FaultQueue {
  readonly buffers: number;
  private readonly base: number;
  private readonly segments: Segment[][];
  private readonly report: Uint8Array;

  constructor(
    private readonly memory: GuestMemory,
    private readonly allocator: PageAllocator,
    private readonly queue: DriverQueueApi,
    private readonly kick: () => void,
    /** With the nested extension negotiated, reasons 3-7 and the PASID field are meaningful. */
    private readonly extended: boolean,
  ) {
    this.buffers = queue.size;
    this.base = allocator.alloc(this.buffers * FAULT_REPORT_SIZE);
    this.segments = [];
    for (let i = 0; i < this.buffers; i++) {
      this.segments.push([{ addr: this.base + i * FAULT_REPORT_SIZE, len: FAULT_REPORT_SIZE }]);
    }
    this.report = new Uint8Array(FAULT_REPORT_SIZE);
  }

  /** Frees the event buffers once the device is reset. */
  release(): void {
    this.allocator.free(this.base);
  }

  /** Posts every buffer and notifies the device (after DRIVER_OK, virtio 1.2 §3.1.1). */
  start(): void {
    for (let i = 0; i < this.buffers; i++) this.post(i);
    if (this.queue.kickNeeded()) this.kick();
  }

  /**
   * Reads every buffer the device returned, reports it to `sink`, and posts it again; one
   * notification for all re-posted buffers. Bounded by the ring: the queue only hands back
   * buffers that are in flight, at most `buffers` of them.
   */
  process(sink: FaultQueueSink): number {
    const returned: number[] = [];
    const lengths: number[] = [];
    this.queue.collect((token, len) => {
      returned.push(token as number);
      lengths.push(len);
    });
    const outcomes = returned.map((index, i) => this.decode(index, lengths[i]!));
    // Posted again before anyone hears of the faults, so a throwing listener cannot lose buffers.
    for (const index of returned) this.post(index);
    if (returned.length > 0 && this.queue.kickNeeded()) this.kick();
    outcomes.forEach((outcome, i) => {
      if (typeof outcome === 'string') sink.ignored(outcome, lengths[i]!);
      else sink.fault(outcome);
    });
    return returned.length;
  }

  private decode(index: number, len: number): IommuFault | IgnoredEventReason {
    // Linux viommu_event_handler: a used length other than the report size is not a report.
    if (len !== FAULT_REPORT_SIZE) return 'length';
    this.memory.readInto(this.base + index * FAULT_REPORT_SIZE, this.report);
    // virtio 1.2 §5.13.7.2: the driver MUST ignore a report whose reserved bytes 1..3 are set.
    const decoded = decodeFaultReport(this.report);
    if (decoded === null) return 'reserved';
    const { reason: rawReason, flags, endpoint } = decoded;
    // virtio 1.2 §5.13.7.2: an unknown reason is treated as UNKNOWN; nested ones only exist
    // with the extension (PROTOCOL.md).
    const known = this.extended || rawReason <= FaultReason.MAPPING;
    const fault: IommuFault = {
      reason: (known ? REASON_NAMES[rawReason] : undefined) ?? 'unknown',
      rawReason,
      read: (flags & FaultFlag.READ) !== 0,
      write: (flags & FaultFlag.WRITE) !== 0,
      exec: (flags & FaultFlag.EXEC) !== 0,
      flags,
      endpoint,
    };
    if (decoded.address !== undefined) fault.address = decoded.address;
    // Upstream offset 12 is reserved1, which the driver MUST ignore without the extension.
    if (this.extended && decoded.pasid !== undefined) fault.pasid = decoded.pasid;
    return fault;
  }

  private post(index: number): void {
    // Zeroed so a buffer returned with a short length cannot replay an older report.
    this.memory.fill(this.base + index * FAULT_REPORT_SIZE, FAULT_REPORT_SIZE, 0);
    this.queue.add([], this.segments[index]!, index);
  }
}
