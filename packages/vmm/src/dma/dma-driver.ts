import { VmmError } from '@vmmkit/core';
import type { DeviceNode, GuestMmio, GuestRuntime } from '../vcpu/guest-runtime.js';
import {
  DMA_COMPATIBLE,
  DMA_CTRL_IRQ_ENABLE,
  DMA_MAGIC,
  DMA_PASID_VALID,
  DmaError,
  DmaIrq,
  DmaOp,
  DmaReg,
  DmaStatus,
} from './registers.js';

/** One transfer as a guest driver asks for it. IOVAs are numbers below 2^53. */
export type DmaJob =
  | { op: 'copy'; src: number; dst: number; length: number; pasid?: number }
  | { op: 'fill'; dst: number; length: number; value: number; pasid?: number }
  | { op: 'crc32'; src: number; length: number; pasid?: number };

const ERROR_NAMES = Object.fromEntries(Object.entries(DmaError).map(([k, v]) => [v, k.toLowerCase()]));

/** What the engine reported for one transfer. */
export interface DmaOutcome {
  ok: boolean;
  /** `none`, `translation`, `bad_op`, `bad_length`, `bus`, `bad_pasid`, `range`. */
  error: string;
  bytesDone: number;
  /** CRC-32 of the source, for `crc32` jobs. */
  crc32: number;
  fault?: { iova: number; reason: number; access: 'read' | 'write' };
}

const TWO_32 = 2 ** 32;

/** Guest-side driver of the DMA engine: programs the registers, rings, waits for the interrupt. */
export class DmaEngineDriver {
  readonly endpoint: number;
  readonly pasidBits: number;

  constructor(
    private readonly mmio: GuestMmio,
    readonly node: DeviceNode,
    private readonly waitForIrq: () => Promise<boolean>,
  ) {
    // Register map: MAGIC identifies the engine before anything is programmed.
    const magic = mmio.read32(node.base + DmaReg.MAGIC);
    if (magic !== DMA_MAGIC) {
      throw new VmmError(
        'ENOENT',
        `no DMA engine at ${node.base.toString(16)} (magic ${magic.toString(16)})`,
      );
    }
    this.endpoint = mmio.read32(node.base + DmaReg.ENDPOINT);
    const caps = mmio.read32(node.base + DmaReg.CAPS);
    this.pasidBits = (caps & 1) !== 0 ? (caps >>> 8) & 0x1f : 0;
  }

  /** Every DMA engine in the guest's device tree. */
  static probe(rt: GuestRuntime): DmaEngineDriver[] {
    return rt.findDevices(DMA_COMPATIBLE).map((node) => {
      const line = node.irq;
      const wait = line === null ? async () => false : () => rt.waitForInterrupt(line, 30_000);
      return new DmaEngineDriver(rt.mmio, node, wait);
    });
  }

  async run(job: DmaJob): Promise<DmaOutcome> {
    const base = this.node.base;
    const mmio = this.mmio;
    const src = job.op === 'fill' ? 0 : job.src;
    const dst = job.op === 'crc32' ? 0 : job.dst;
    mmio.write32(base + DmaReg.SRC_LO, src % TWO_32);
    mmio.write32(base + DmaReg.SRC_HI, Math.floor(src / TWO_32));
    mmio.write32(base + DmaReg.DST_LO, dst % TWO_32);
    mmio.write32(base + DmaReg.DST_HI, Math.floor(dst / TWO_32));
    mmio.write32(base + DmaReg.LENGTH, job.length);
    mmio.write32(base + DmaReg.PASID, job.pasid === undefined ? 0 : DMA_PASID_VALID | job.pasid);
    mmio.write32(
      base + DmaReg.OP,
      job.op === 'copy' ? DmaOp.COPY : job.op === 'fill' ? DmaOp.FILL : DmaOp.CRC32,
    );
    if (job.op === 'fill') mmio.write32(base + DmaReg.FILL, job.value);
    const withIrq = this.node.irq !== null;
    mmio.write32(base + DmaReg.CTRL, withIrq ? DMA_CTRL_IRQ_ENABLE : 0);
    mmio.write32(base + DmaReg.DOORBELL, 1);
    if (withIrq && !(await this.waitForIrq())) {
      throw new VmmError('EBUSY', `DMA engine at ${base.toString(16)} raised no interrupt within 30 s`);
    }
    let status = mmio.read32(base + DmaReg.STATUS);
    // Without an interrupt line, poll; the engine finishes inside the doorbell, so this is short.
    for (let i = 0; status === DmaStatus.BUSY && i < 1_000_000; i++)
      status = mmio.read32(base + DmaReg.STATUS);
    const error = mmio.read32(base + DmaReg.ERROR);
    const outcome: DmaOutcome = {
      ok: status === DmaStatus.DONE,
      error: ERROR_NAMES[error] ?? `unknown(${error})`,
      bytesDone: mmio.read32(base + DmaReg.BYTES_DONE),
      crc32: mmio.read32(base + DmaReg.RESULT),
    };
    if (error === DmaError.TRANSLATION || error === DmaError.BUS) {
      outcome.fault = {
        iova: mmio.read32(base + DmaReg.FAULT_ADDR_HI) * TWO_32 + mmio.read32(base + DmaReg.FAULT_ADDR_LO),
        reason: mmio.read32(base + DmaReg.FAULT_REASON),
        access: mmio.read32(base + DmaReg.FAULT_ACCESS) === 1 ? 'write' : 'read',
      };
    }
    mmio.write32(base + DmaReg.IRQ_ACK, DmaIrq.DONE | DmaIrq.ERROR);
    return outcome;
  }
}
