import { crc32 } from 'node:zlib';
import {
  DmaAccess,
  fillBytes,
  type GuestMemory,
  type InterruptLine,
  type MmioHandler,
  NO_PASID,
  VmmError,
} from '@vmmkit/core';
import type { DeviceSpec } from '../devices.js';
import { DmaSide } from './dma-side.js';
import {
  DMA_COMPATIBLE,
  DMA_CTRL_IRQ_ENABLE,
  DMA_MAGIC,
  DMA_MAX_LENGTH,
  DMA_PASID_MASK,
  DMA_PASID_VALID,
  DMA_VERSION,
  DMA_WINDOW_SIZE,
  DmaError,
  DmaIrq,
  DmaOp,
  DmaReg,
  DmaStatus,
} from './registers.js';
import { DMA_PAGE_SIZE, type DmaTranslator } from './translator.js';

/** IOVA pages above this would put the IOVA past 2^64. */
const LAST_IOVA_PAGE = 2 ** 52 - 1;
// Module-local copies of what the per-page loop uses: a bundler or test runner may turn every
// use of an imported binding into a property read on a module object (vitest does, and the
// engine then ran at half speed in benchmarks).
const PAGE = DMA_PAGE_SIZE;
const OP_COPY: number = DmaOp.COPY;
const OP_FILL: number = DmaOp.FILL;
const checksum = crc32;
const fillRange = fillBytes;

export interface DmaEngineOptions {
  name?: string;
  /** Endpoint ID the engine presents to the IOMMU. */
  endpoint: number;
  /** PASID width in bits (0: no PASID support, at most 20). Default 20. */
  pasidBits?: number;
  /** Translator to use instead of the machine's IOMMU. */
  translator?: DmaTranslator;
}

/** Host-side counters of one engine. */
export interface DmaEngineStats {
  transfers: number;
  bytes: number;
  errors: number;
}

/**
 * The DMA engine device model (register map in `registers.ts`). It reaches guest memory only
 * through the translator, page by page, and never throws out of an MMIO access: whatever the
 * guest programs ends in a status.
 */
export class DmaEngine implements MmioHandler {
  readonly size = DMA_WINDOW_SIZE;
  readonly stats: DmaEngineStats = { transfers: 0, bytes: 0, errors: 0 };
  private readonly regs = new Uint32Array(DMA_WINDOW_SIZE / 4);
  private readonly src = new DmaSide(DmaAccess.READ);
  private readonly dst = new DmaSide(DmaAccess.WRITE);
  private readonly pasidBits: number;

  constructor(
    readonly name: string,
    private readonly memory: GuestMemory,
    private readonly irq: InterruptLine,
    private readonly translator: () => DmaTranslator,
    readonly endpoint: number,
    pasidBits = 20,
  ) {
    if (!Number.isInteger(endpoint) || endpoint < 0 || endpoint > 0xffff_ffff) {
      throw new VmmError(
        'EINVAL',
        `DMA engine endpoint must be a 32-bit unsigned integer, got ${String(endpoint)}`,
      );
    }
    if (!Number.isInteger(pasidBits) || pasidBits < 0 || pasidBits > 20) {
      throw new VmmError('EINVAL', `DMA engine PASID width must be 0..20 bits, got ${String(pasidBits)}`);
    }
    this.pasidBits = pasidBits;
    const r = this.regs;
    r[DmaReg.MAGIC >> 2] = DMA_MAGIC;
    r[DmaReg.VERSION >> 2] = DMA_VERSION;
    r[DmaReg.ENDPOINT >> 2] = endpoint;
    r[DmaReg.CAPS >> 2] = (pasidBits > 0 ? 1 : 0) | (pasidBits << 8) | (0b111 << 16);
  }

  read(offset: number, size: 1 | 2 | 4 | 8): number {
    if (offset < 0 || offset + size > DMA_WINDOW_SIZE) return 0;
    const word = this.regs[offset >> 2]! >>> ((offset & 3) * 8);
    if (size === 1) return word & 0xff;
    if (size === 2) return word & 0xffff;
    return word >>> 0;
  }

  write(offset: number, size: 1 | 2 | 4 | 8, value: number): void {
    // Registers are 32-bit: only aligned 32-bit writes take effect (narrow writes to a
    // trigger register must not start half-programmed transfers).
    if (size !== 4 || (offset & 3) !== 0 || offset < 0 || offset >= DMA_WINDOW_SIZE) return;
    const r = this.regs;
    const v = value >>> 0;
    switch (offset) {
      case DmaReg.SRC_LO:
      case DmaReg.SRC_HI:
      case DmaReg.DST_LO:
      case DmaReg.DST_HI:
      case DmaReg.LENGTH:
      case DmaReg.PASID:
      case DmaReg.OP:
        r[offset >> 2] = v;
        return;
      case DmaReg.FILL:
        r[offset >> 2] = v & 0xff;
        return;
      case DmaReg.CTRL:
        r[offset >> 2] = v & DMA_CTRL_IRQ_ENABLE;
        return;
      case DmaReg.IRQ_ACK: {
        const left = r[DmaReg.IRQ_STATUS >> 2]! & ~v;
        r[DmaReg.IRQ_STATUS >> 2] = left;
        if (left === 0) this.irq.lower?.();
        return;
      }
      case DmaReg.DOORBELL:
        if ((v & 1) !== 0) this.start();
        return;
      default:
        return;
    }
  }

  private start(): void {
    const r = this.regs;
    if (r[DmaReg.STATUS >> 2] === DmaStatus.BUSY) return;
    r[DmaReg.STATUS >> 2] = DmaStatus.BUSY;
    r[DmaReg.ERROR >> 2] = DmaError.NONE;
    r[DmaReg.RESULT >> 2] = 0;
    r[DmaReg.FAULT_ADDR_LO >> 2] = 0;
    r[DmaReg.FAULT_ADDR_HI >> 2] = 0;
    r[DmaReg.FAULT_REASON >> 2] = 0;
    r[DmaReg.FAULT_ACCESS >> 2] = 0;
    r[DmaReg.BYTES_DONE >> 2] = 0;
    const error = this.transfer();
    r[DmaReg.ERROR >> 2] = error;
    r[DmaReg.STATUS >> 2] = error === DmaError.NONE ? DmaStatus.DONE : DmaStatus.ERROR;
    r[DmaReg.COMPLETED >> 2] = (r[DmaReg.COMPLETED >> 2]! + 1) >>> 0;
    this.stats.transfers++;
    this.stats.bytes += r[DmaReg.BYTES_DONE >> 2]!;
    if (error !== DmaError.NONE) this.stats.errors++;
    r[DmaReg.IRQ_STATUS >> 2] =
      r[DmaReg.IRQ_STATUS >> 2]! | (error === DmaError.NONE ? DmaIrq.DONE : DmaIrq.ERROR);
    if ((r[DmaReg.CTRL >> 2]! & DMA_CTRL_IRQ_ENABLE) !== 0) this.irq.raise();
  }

  /** Runs the programmed transfer; returns a `DmaError`. */
  private transfer(): number {
    const r = this.regs;
    const op = r[DmaReg.OP >> 2]!;
    const length = r[DmaReg.LENGTH >> 2]!;
    // Register map: OP is 0..2; anything else is refused before memory is touched.
    if (op !== DmaOp.COPY && op !== DmaOp.FILL && op !== DmaOp.CRC32) return DmaError.BAD_OP;
    // Register map: LENGTH is 1..DMA_MAX_LENGTH.
    if (length === 0 || length > DMA_MAX_LENGTH) return DmaError.BAD_LENGTH;
    const pasidReg = r[DmaReg.PASID >> 2]!;
    let pasid = NO_PASID;
    if ((pasidReg & DMA_PASID_VALID) !== 0) {
      const value = pasidReg & DMA_PASID_MASK;
      // Register map: reserved PASID bits must be 0, and a PASID must fit the advertised width.
      if ((pasidReg & ~(DMA_PASID_VALID | DMA_PASID_MASK)) !== 0) return DmaError.BAD_PASID;
      if (this.pasidBits === 0 || value >= 2 ** this.pasidBits) return DmaError.BAD_PASID;
      pasid = value;
    }
    const readsSource = op !== DmaOp.FILL;
    const writesDest = op !== DmaOp.CRC32;
    this.src.start(r[DmaReg.SRC_LO >> 2]!, r[DmaReg.SRC_HI >> 2]!, length);
    this.dst.start(r[DmaReg.DST_LO >> 2]!, r[DmaReg.DST_HI >> 2]!, length);
    // The whole range must stay below 2^64 (no wrap-around to IOVA 0).
    const lastOffset = length - 1;
    if (
      (readsSource &&
        this.src.page + Math.floor((this.src.offset + lastOffset) / DMA_PAGE_SIZE) > LAST_IOVA_PAGE) ||
      (writesDest &&
        this.dst.page + Math.floor((this.dst.offset + lastOffset) / DMA_PAGE_SIZE) > LAST_IOVA_PAGE)
    ) {
      return DmaError.RANGE;
    }
    return this.move(op, length, pasid, readsSource, writesDest);
  }

  private move(op: number, length: number, pasid: number, readsSource: boolean, writesDest: boolean): number {
    const translator = this.translator();
    const memory = this.memory;
    const endpoint = this.endpoint;
    const fill = this.regs[DmaReg.FILL >> 2]!;
    const src = this.src;
    const dst = this.dst;
    let crc = 0;
    let done = 0;
    while (done < length) {
      let chunk = length - done;
      if (readsSource) {
        if (src.page !== src.mapped) {
          const error = src.map(translator, endpoint, pasid, memory);
          if (error !== DmaError.NONE) return this.stop(src, error, done);
        }
        const room = PAGE - src.offset;
        if (room < chunk) chunk = room;
      }
      if (writesDest) {
        if (dst.page !== dst.mapped) {
          const error = dst.map(translator, endpoint, pasid, memory);
          if (error !== DmaError.NONE) return this.stop(dst, error, done);
        }
        const room = PAGE - dst.offset;
        if (room < chunk) chunk = room;
      }
      if (op === OP_COPY) {
        const from = src.base + src.offset;
        dst.bytes.set(src.bytes.subarray(from, from + chunk), dst.base + dst.offset);
      } else if (op === OP_FILL) {
        const to = dst.base + dst.offset;
        fillRange(dst.bytes, fill, to, to + chunk);
      } else {
        const from = src.base + src.offset;
        crc = checksum(src.bytes.subarray(from, from + chunk), crc);
      }
      if (readsSource) src.advance(chunk);
      if (writesDest) dst.advance(chunk);
      done += chunk;
    }
    this.regs[DmaReg.BYTES_DONE >> 2] = done;
    if (op === DmaOp.CRC32) this.regs[DmaReg.RESULT >> 2] = crc >>> 0;
    return DmaError.NONE;
  }

  /** Ends a transfer at the page `side` could not reach: the fault registers say where and why. */
  private stop(side: DmaSide, error: number, done: number): number {
    const r = this.regs;
    r[DmaReg.FAULT_ADDR_LO >> 2] = side.lo();
    r[DmaReg.FAULT_ADDR_HI >> 2] = side.hi();
    r[DmaReg.FAULT_REASON >> 2] = error === DmaError.TRANSLATION ? side.faultReason : 0;
    r[DmaReg.FAULT_ACCESS >> 2] = side === this.dst ? 1 : 0;
    r[DmaReg.BYTES_DONE >> 2] = done;
    return error;
  }
}

/** A device spec for a DMA engine behind the machine's IOMMU (identity without one). */
export function dmaEngine(options: DmaEngineOptions): DeviceSpec & { engine(): DmaEngine } {
  let engine: DmaEngine | null = null;
  const name = options.name ?? 'dma0';
  return {
    name,
    compatible: DMA_COMPATIBLE,
    mmioSize: DMA_WINDOW_SIZE,
    endpoint: options.endpoint,
    create(ctx) {
      const pick = options.translator ? () => options.translator! : () => ctx.translator();
      engine = new DmaEngine(ctx.name, ctx.memory, ctx.irq, pick, options.endpoint, options.pasidBits ?? 20);
      return {
        mmio: engine,
        doorbells: [DmaReg.DOORBELL],
        properties: { 'pasid-bits': options.pasidBits ?? 20 },
      };
    },
    engine() {
      if (engine === null)
        throw new VmmError('ENOENT', `DMA engine '${name}' has not been placed on a machine yet`);
      return engine;
    },
  };
}
