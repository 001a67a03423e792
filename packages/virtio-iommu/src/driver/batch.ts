/**
 * A batch of requests: queued on the host side, sent with one notification per queue-full,
 * answered with one status each. Arguments are checked when a request is queued, so a bad
 * argument throws before anything reaches the device.
 */
import { hex, VmmError } from '@vmmkit/core';
import { ATTACH_F_BYPASS, MapFlag, RequestSize, Status } from '../protocol/constants.js';
import { writeInvalidateRequest, writeMapRequest, writeUnmapRequest } from '../protocol/request-writers.js';
import { decodeRequest, encodeAttach, encodeAttachTable, encodeDetach } from '../protocol/requests.js';
import { toU64, U64_MAX } from '../protocol/u64.js';
import {
  checkInvalidateArgs,
  checkU32,
  type InvalidateArgs,
  type MappingObserver,
  reportAccepted,
} from './batch-checks.js';
import { BatchResult, describeRequest } from './batch-result.js';
import { VirtioIommuRequestError } from './request-error.js';
import { type RequestRing, SLOT_SIZE } from './request-ring.js';

export type { InvalidateArgs, MappingObserver };

const TWO_POW_32 = 0x1_0000_0000;
const NO_FAILURES: readonly VirtioIommuRequestError[] = Object.freeze([]);
const INITIAL_REQUESTS = 64;

/** What the batch checks arguments against: the negotiated geometry. */
export interface BatchLimits {
  /** Smallest page size (lowest bit of page_size_mask). */
  granule: bigint;
  inputStart: bigint;
  inputEnd: bigint;
  /** Whether MAP_F_MMIO may be used (F_MMIO negotiated). */
  mmio: boolean;
  /** Whether ATTACH_F_BYPASS may be used (F_BYPASS_CONFIG negotiated). */
  bypassConfig: boolean;
  /** Whether ATTACH_TABLE and INVALIDATE exist (F_ATTACH_TABLE negotiated). */
  attachTable: boolean;
}

// `>>> 0` is a safe integer modulo 2^32, exactly; `%` of a double above 2^31 calls fmod, and the
// IOVAs and addresses of every request are there.
function lo32(value: number): number {
  return value >>> 0;
}

function hi32(value: number): number {
  return (value - (value >>> 0)) / TWO_POW_32;
}

/** A limit as a number for the safe-integer path (Infinity where it passes 2^53). */
function asNumber(v: bigint): number {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : Number.POSITIVE_INFINITY;
}

export class IommuBatch {
  private staging: Uint8Array;
  private view: DataView;
  private readLengths: Uint8Array;
  private count = 0;
  /** Statuses of `submitOrThrow`, reused from call to call. */
  private scratchStatuses = new Uint8Array(0);
  /** The limits as numbers for the safe-integer path (Infinity where they pass 2^53). */
  private readonly granule: number;
  /** `granule - 1` when the granule is a power of two up to 2^32, for `aligned`; else -1. */
  private readonly granuleMask: number;
  private readonly inputStart: number;
  private readonly inputEnd: number;

  constructor(
    private readonly ring: RequestRing,
    private readonly limits: BatchLimits,
    /** Requests to make room for up front (the batch grows as needed). */
    expected = INITIAL_REQUESTS,
    private readonly observer: MappingObserver | null = null,
  ) {
    const room = Math.max(1, Math.min(Math.floor(expected), 1 << 16));
    this.staging = new Uint8Array(room * SLOT_SIZE);
    this.view = new DataView(this.staging.buffer);
    this.readLengths = new Uint8Array(room);
    this.granule = asNumber(limits.granule);
    const g = this.granule;
    this.granuleMask = g > 0 && g <= TWO_POW_32 && 2 ** Math.round(Math.log2(g)) === g ? g - 1 : -1;
    this.inputStart = asNumber(limits.inputStart);
    this.inputEnd = asNumber(limits.inputEnd);
  }

  /** Requests queued and not yet submitted. */
  get length(): number {
    return this.count;
  }

  /**
   * MAP `[iova, iova + size)` to `[phys, phys + size)` with MAP flags (`MapFlag.READ | WRITE |
   * MMIO`). Addresses and size must be aligned to the granule and lie in the input range.
   */
  map(
    domain: number,
    iova: bigint | number,
    phys: bigint | number,
    size: bigint | number,
    flags: number,
  ): this {
    checkU32(domain, 'domain');
    if (!Number.isInteger(flags) || (flags & ~(MapFlag.READ | MapFlag.WRITE | MapFlag.MMIO)) !== 0) {
      throw new VmmError('EINVAL', `MAP flags ${String(flags)} use bits other than READ, WRITE and MMIO`);
    }
    if ((flags & MapFlag.MMIO) !== 0 && !this.limits.mmio) {
      throw new VmmError('EINVAL', 'MAP_F_MMIO needs VIRTIO_IOMMU_F_MMIO, which the device did not offer');
    }
    // Fast path: safe-integer arguments whose range ends below 2^53 need no BigInt.
    if (typeof iova === 'number' && typeof phys === 'number' && typeof size === 'number') {
      if (this.numberRangeOk(iova, size, 'map') && Number.isSafeInteger(phys) && phys >= 0) {
        this.checkAlignedNumber(phys, 'physical address');
        const end = iova + size - 1;
        const at = this.reserve(RequestSize.MAP);
        writeMapRequest(
          this.view,
          at,
          domain,
          lo32(iova),
          hi32(iova),
          lo32(end),
          hi32(end),
          lo32(phys),
          hi32(phys),
          flags,
        );
        return this;
      }
    }
    const start = toU64(iova, 'iova');
    const length = toU64(size, 'size');
    const pa = toU64(phys, 'phys');
    const end = this.bigRange(start, length, 'map');
    if (pa % this.limits.granule !== 0n) {
      throw new VmmError(
        'EINVAL',
        `physical address ${hex(pa)} is not aligned to the ${hex(this.limits.granule)} granule`,
      );
    }
    if (pa + length - 1n > U64_MAX)
      throw new VmmError('ERANGE', `physical range at ${hex(pa)} wraps past 2^64`);
    const at = this.reserve(RequestSize.MAP);
    writeMapRequest(
      this.view,
      at,
      domain,
      Number(start & 0xffff_ffffn),
      Number(start >> 32n),
      Number(end & 0xffff_ffffn),
      Number(end >> 32n),
      Number(pa & 0xffff_ffffn),
      Number(pa >> 32n),
      flags,
    );
    return this;
  }

  /** UNMAP `[iova, iova + size)`: removes every mapping inside; one that would be split fails with S_RANGE. */
  unmap(domain: number, iova: bigint | number, size: bigint | number): this {
    checkU32(domain, 'domain');
    if (typeof iova === 'number' && typeof size === 'number' && this.numberRangeOk(iova, size, 'unmap')) {
      const end = iova + size - 1;
      const at = this.reserve(RequestSize.UNMAP);
      writeUnmapRequest(this.view, at, domain, lo32(iova), hi32(iova), lo32(end), hi32(end));
      return this;
    }
    const start = toU64(iova, 'iova');
    const end = this.bigRange(start, toU64(size, 'size'), 'unmap');
    const at = this.reserve(RequestSize.UNMAP);
    writeUnmapRequest(
      this.view,
      at,
      domain,
      Number(start & 0xffff_ffffn),
      Number(start >> 32n),
      Number(end & 0xffff_ffffn),
      Number(end >> 32n),
    );
    return this;
  }

  attach(domain: number, endpoint: number, flags = 0): this {
    if (!Number.isInteger(flags) || (flags & ~ATTACH_F_BYPASS) !== 0) {
      throw new VmmError('EINVAL', `ATTACH flags ${String(flags)} use bits other than BYPASS`);
    }
    if (flags !== 0 && !this.limits.bypassConfig) {
      throw new VmmError(
        'ENOSYS',
        'ATTACH_F_BYPASS needs VIRTIO_IOMMU_F_BYPASS_CONFIG, which was not negotiated',
      );
    }
    this.copy(encodeAttach({ domain, endpoint, flags }));
    return this;
  }

  detach(domain: number, endpoint: number): this {
    this.copy(encodeDetach({ domain, endpoint }));
    return this;
  }

  /** ATTACH_TABLE with `descriptor` = bytes 16..83 (the le16 format, then the payload). */
  attachTable(domain: number, endpoint: number, descriptor: { format: number; payload: Uint8Array }): this {
    this.checkNested('ATTACH_TABLE');
    const { format, payload } = descriptor;
    if (payload.length < 2 || payload[0]! + payload[1]! * 256 !== format) {
      throw new VmmError(
        'EINVAL',
        `table descriptor of format ${format} must start with its le16 format number (bytes 16..17 of ATTACH_TABLE)`,
      );
    }
    this.copy(encodeAttachTable({ domain, endpoint, format, payload: payload.subarray(2) }));
    return this;
  }

  invalidate(r: InvalidateArgs): this {
    this.checkNested('INVALIDATE');
    checkInvalidateArgs(r);
    const at = this.reserve(RequestSize.INVALIDATE);
    writeInvalidateRequest(
      this.view,
      at,
      r.granularity,
      r.caches,
      r.flags,
      r.domain,
      r.pasid,
      r.archid,
      r.virtStart,
      r.nrPages,
      r.granule,
    );
    return this;
  }

  /** Drops every queued request. */
  clear(): void {
    this.count = 0;
  }

  /**
   * Sends every queued request (one notification per queue-full) and collects all statuses.
   * The batch is empty afterwards and can be reused.
   */
  submit(): BatchResult {
    const count = this.count;
    const statuses = new Uint8Array(count);
    return new BatchResult(count, statuses, this.send(statuses));
  }

  /**
   * `submit().throwIfFailed()` without building a result when every request succeeds: the
   * one-request calls of the driver (`map`, `unmap`, …) go through here.
   */
  submitOrThrow(): void {
    const count = this.count;
    if (this.scratchStatuses.length < count) this.scratchStatuses = new Uint8Array(this.readLengths.length);
    const failures = this.send(this.scratchStatuses);
    if (failures.length > 0)
      new BatchResult(count, this.scratchStatuses.slice(0, count), failures).throwIfFailed();
  }

  /** Sends the queued requests; statuses land in `statuses`; returns one error per refused request. */
  private send(statuses: Uint8Array): readonly VirtioIommuRequestError[] {
    const count = this.count;
    this.count = 0;
    if (count === 0) return NO_FAILURES;
    try {
      this.ring.submit(this.staging, this.readLengths, count, statuses);
      let failures: VirtioIommuRequestError[] | null = null;
      for (let i = 0; i < count; i++) {
        const status = statuses[i]!;
        if (status === Status.OK) continue;
        const bytes = this.staging.subarray(i * SLOT_SIZE, i * SLOT_SIZE + this.readLengths[i]!);
        failures ??= [];
        failures.push(new VirtioIommuRequestError(status, describeRequest(decodeRequest(bytes), i)));
      }
      if (this.observer !== null) reportAccepted(this.view, count, statuses, this.observer);
      return failures ?? NO_FAILURES;
    } finally {
      // Results are read: a fault listener may now reuse this batch.
      this.ring.settle();
    }
  }

  /**
   * Checks a safe-integer range; `false` when its end passes 2^53 (the caller then takes the
   * BigInt path).
   */
  private numberRangeOk(iova: number, size: number, what: string): boolean {
    if (!Number.isSafeInteger(iova) || iova < 0 || !Number.isSafeInteger(size) || size < 0) {
      throw new VmmError(
        'EINVAL',
        `${what}: iova ${iova} and size ${size} must be non-negative safe integers`,
      );
    }
    if (size === 0)
      throw new VmmError('EINVAL', `${what} of 0 bytes at ${hex(iova)}: the size must be positive`);
    const end = iova + size - 1;
    if (!Number.isSafeInteger(end)) return false;
    const g = this.granule;
    if (!this.aligned(iova) || !this.aligned(size)) {
      throw new VmmError(
        'EINVAL',
        `${what} [${hex(iova)}, +${hex(size)}) is not aligned to the ${hex(g)} granule (page_size_mask)`,
        { iova, size },
      );
    }
    // virtio 1.2 §5.13.6.5: with F_INPUT_RANGE the driver MUST NOT send addresses outside it.
    if (iova < this.inputStart || end > this.inputEnd) throw this.outOfRange(BigInt(iova), BigInt(end), what);
    return true;
  }

  private checkAlignedNumber(value: number, what: string): void {
    if (!this.aligned(value)) {
      throw new VmmError(
        'EINVAL',
        `${what} ${hex(value)} is not aligned to the ${hex(this.limits.granule)} granule`,
      );
    }
  }

  /** Whether a non-negative safe integer is a multiple of the granule. */
  private aligned(value: number): boolean {
    const mask = this.granuleMask;
    // A power-of-two granule up to 2^32 divides 2^32, so the low 32 bits decide.
    if (mask >= 0) return ((value >>> 0) & mask) === 0;
    return value % this.granule === 0;
  }

  private bigRange(start: bigint, size: bigint, what: string): bigint {
    if (size === 0n)
      throw new VmmError('EINVAL', `${what} of 0 bytes at ${hex(start)}: the size must be positive`);
    const end = start + size - 1n;
    if (end > U64_MAX) throw new VmmError('ERANGE', `${what} [${hex(start)}, +${hex(size)}) wraps past 2^64`);
    const g = this.limits.granule;
    if (start % g !== 0n || size % g !== 0n) {
      throw new VmmError(
        'EINVAL',
        `${what} [${hex(start)}, +${hex(size)}) is not aligned to the ${hex(g)} granule`,
      );
    }
    if (start < this.limits.inputStart || end > this.limits.inputEnd) throw this.outOfRange(start, end, what);
    return end;
  }

  private outOfRange(start: bigint, end: bigint, what: string): VmmError {
    return new VmmError(
      'ERANGE',
      `${what} [${hex(start)}, ${hex(end)}] leaves the device's input range [${hex(this.limits.inputStart)}, ${hex(this.limits.inputEnd)}]`,
      { start, end },
    );
  }

  private checkNested(what: string): void {
    if (!this.limits.attachTable) {
      throw new VmmError('ENOSYS', `${what} needs VIRTIO_IOMMU_F_ATTACH_TABLE, which was not negotiated`);
    }
  }

  private copy(readable: Uint8Array): void {
    const at = this.reserve(readable.length);
    this.staging.set(readable, at);
  }

  /** Room for one more request of `readLength` bytes; returns its offset in the staging buffer. */
  private reserve(readLength: number): number {
    if (this.count === this.readLengths.length) {
      const staging = new Uint8Array(this.staging.length * 2);
      staging.set(this.staging);
      const lengths = new Uint8Array(this.readLengths.length * 2);
      lengths.set(this.readLengths);
      this.staging = staging;
      this.view = new DataView(staging.buffer);
      this.readLengths = lengths;
    }
    const index = this.count++;
    const at = index * SLOT_SIZE;
    this.readLengths[index] = readLength;
    // The writable tail follows the readable part in the same slot; it must start zeroed.
    this.view.setUint32(at + readLength, 0, true);
    return at;
  }
}
