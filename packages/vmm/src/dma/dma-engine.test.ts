import { crc32 } from 'node:zlib';
import { DmaAccess, GuestMemory, NestedFaultReason, NO_PASID } from '@vmmkit/core';
import fc from 'fast-check';
import { beforeEach, describe, expect, it } from 'vitest';
import { FakeIommu, FakePerm } from '../testing/fake-iommu.js';
import { DmaEngine } from './dma-engine.js';
import { DMA_PASID_VALID, DmaError, DmaIrq, DmaOp, DmaReg, DmaStatus } from './registers.js';
import { identityTranslator } from './translator.js';

const RAM = 0x1000_0000;
const RAM_SIZE = 64 * 0x1000;
const PAGE = 0x1000;
const EP = 7;

let memory: GuestMemory;
let iommu: FakeIommu;
let irq: { raised: number; lowered: number };
let engine: DmaEngine;

function setup(pasidBits = 20, translator: () => import('./translator.js').DmaTranslator = () => iommu) {
  memory = new GuestMemory();
  memory.addBank({ gpa: RAM, size: RAM_SIZE });
  iommu = new FakeIommu();
  irq = { raised: 0, lowered: 0 };
  engine = new DmaEngine(
    'dma',
    memory,
    { raise: () => void irq.raised++, lower: () => void irq.lowered++ },
    translator,
    EP,
    pasidBits,
  );
}

const w = (reg: number, value: number) => engine.write(reg, 4, value);
const r = (reg: number) => engine.read(reg, 4);

function program(op: number, src: number, dst: number, length: number, pasid?: number) {
  w(DmaReg.SRC_LO, src % 2 ** 32);
  w(DmaReg.SRC_HI, Math.floor(src / 2 ** 32));
  w(DmaReg.DST_LO, dst % 2 ** 32);
  w(DmaReg.DST_HI, Math.floor(dst / 2 ** 32));
  w(DmaReg.LENGTH, length);
  w(DmaReg.PASID, pasid === undefined ? 0 : DMA_PASID_VALID | pasid);
  w(DmaReg.OP, op);
  w(DmaReg.CTRL, 1);
  w(DmaReg.DOORBELL, 1);
}

/** Bytes at an IOVA range as the fake IOMMU maps them (the test's own reading of the map). */
function readIova(pagesPa: number[], offset: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    const at = offset + i;
    out[i] = memory.readU8(pagesPa[Math.floor(at / PAGE)]! + (at % PAGE));
  }
  return out;
}

beforeEach(() => setup());

describe('DMA engine registers', () => {
  it('identifies itself and its endpoint and PASID width', () => {
    expect(r(DmaReg.MAGIC)).toBe(0x45414d44);
    expect(r(DmaReg.VERSION)).toBe(1);
    expect(r(DmaReg.ENDPOINT)).toBe(EP);
    expect(r(DmaReg.CAPS) & 1).toBe(1);
    expect((r(DmaReg.CAPS) >>> 8) & 0x1f).toBe(20);
    expect(engine.read(DmaReg.MAGIC, 1)).toBe(0x44);
    expect(engine.read(0xffc, 4)).toBe(0);
  });
});

describe('DMA engine transfers through the IOMMU', () => {
  it('copies between scattered pages at any offsets, translating every page with the PASID', () => {
    fc.assert(
      fc.property(
        fc.shuffledSubarray([...Array(64).keys()], { minLength: 16, maxLength: 16 }),
        fc.integer({ min: 0, max: PAGE - 1 }),
        fc.integer({ min: 0, max: PAGE - 1 }),
        fc.integer({ min: 1, max: 6 * PAGE }),
        fc.integer({ min: 0, max: 2 ** 20 - 1 }),
        (pages, srcOff, dstOff, length, pasid) => {
          setup();
          const srcPa = pages.slice(0, 8).map((p) => RAM + p * PAGE);
          const dstPa = pages.slice(8).map((p) => RAM + p * PAGE);
          const SRC = 0x7_0000_0000;
          const DST = 0x9_0000_0000;
          for (const [i, pa] of srcPa.entries())
            iommu.map(EP, pasid, SRC + i * PAGE, pa, PAGE, FakePerm.READ);
          for (const [i, pa] of dstPa.entries())
            iommu.map(EP, pasid, DST + i * PAGE, pa, PAGE, FakePerm.WRITE);
          for (const pa of srcPa)
            memory.write(
              pa,
              Uint8Array.from({ length: PAGE }, (_, i) => (pa / PAGE + i * 7) & 0xff),
            );
          const before = memory.read(RAM, RAM_SIZE);
          program(DmaOp.COPY, SRC + srcOff, DST + dstOff, length, pasid);
          expect(r(DmaReg.STATUS)).toBe(DmaStatus.DONE);
          expect(r(DmaReg.ERROR)).toBe(DmaError.NONE);
          expect(r(DmaReg.BYTES_DONE)).toBe(length);
          expect(Buffer.compare(readIova(dstPa, dstOff, length), readIova(srcPa, srcOff, length))).toBe(0);
          // Nothing outside the destination range changed.
          const after = memory.read(RAM, RAM_SIZE);
          for (let i = 0; i < length; i++) {
            const at = dstOff + i;
            before[dstPa[Math.floor(at / PAGE)]! - RAM + (at % PAGE)] =
              after[dstPa[Math.floor(at / PAGE)]! - RAM + (at % PAGE)]!;
          }
          expect(Buffer.compare(after, before)).toBe(0);
          expect(iommu.faults).toEqual([]);
          return true;
        },
      ),
      { numRuns: 60 },
    );
  });

  it('fills and checksums (CRC-32/ISO-HDLC: check value 0xcbf43926 for "123456789")', () => {
    iommu.map(EP, NO_PASID, 0x10_0000, RAM, 2 * PAGE);
    memory.write(RAM + PAGE - 4, new TextEncoder().encode('123456789'));
    program(DmaOp.CRC32, 0x10_0000 + PAGE - 4, 0, 9);
    expect(r(DmaReg.STATUS)).toBe(DmaStatus.DONE);
    expect(r(DmaReg.RESULT)).toBe(0xcbf43926);
    w(DmaReg.FILL, 0x1a5);
    program(DmaOp.FILL, 0, 0x10_0000 + 100, PAGE + 50);
    expect(r(DmaReg.STATUS)).toBe(DmaStatus.DONE);
    expect(memory.read(RAM + 100, PAGE + 50).every((b) => b === 0xa5)).toBe(true);
    expect(memory.readU8(RAM + 99)).toBe(0);
    expect(memory.readU8(RAM + PAGE + 150)).toBe(0);
    // The translator saw no PASID: the PASID register's valid bit was clear.
    expect(iommu.faults).toEqual([]);
  });

  it('checksums exactly what a CRC-32 of the gathered source bytes gives', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 3 * PAGE }), fc.nat(PAGE - 1), (data, off) => {
        setup();
        iommu.map(EP, 3, 0, RAM + 8 * PAGE, PAGE);
        iommu.map(EP, 3, PAGE, RAM + 2 * PAGE, PAGE);
        iommu.map(EP, 3, 2 * PAGE, RAM + 30 * PAGE, PAGE);
        iommu.map(EP, 3, 3 * PAGE, RAM + 5 * PAGE, PAGE);
        const pas = [8, 2, 30, 5].map((p) => RAM + p * PAGE);
        for (let i = 0; i < data.length; i++) {
          const at = off + i;
          memory.writeU8(pas[Math.floor(at / PAGE)]! + (at % PAGE), data[i]!);
        }
        program(DmaOp.CRC32, off, 0, data.length, 3);
        return r(DmaReg.STATUS) === DmaStatus.DONE && r(DmaReg.RESULT) === crc32(data);
      }),
      { numRuns: 50 },
    );
  });

  it('stops at the first page the IOMMU refuses, reports where, and keeps what was moved', () => {
    iommu.map(EP, 5, 0x20_0000, RAM, 3 * PAGE, FakePerm.READ);
    iommu.map(EP, 5, 0x40_0000, RAM + 10 * PAGE, PAGE, FakePerm.WRITE); // second dst page missing
    memory.fill(RAM, 3 * PAGE, 0x77);
    program(DmaOp.COPY, 0x20_0000, 0x40_0000 + 0x800, 2 * PAGE, 5);
    expect(r(DmaReg.STATUS)).toBe(DmaStatus.ERROR);
    expect(r(DmaReg.ERROR)).toBe(DmaError.TRANSLATION);
    expect(r(DmaReg.FAULT_ADDR_LO)).toBe(0x40_1000);
    expect(r(DmaReg.FAULT_ADDR_HI)).toBe(0);
    expect(r(DmaReg.FAULT_REASON)).toBe(NestedFaultReason.MAPPING);
    expect(r(DmaReg.FAULT_ACCESS)).toBe(1);
    expect(r(DmaReg.BYTES_DONE)).toBe(0x800);
    expect(memory.read(RAM + 10 * PAGE + 0x800, 0x800).every((b) => b === 0x77)).toBe(true);
    expect(memory.readU8(RAM + 10 * PAGE + 0x7ff)).toBe(0);
    expect(iommu.faults).toEqual([
      { endpoint: EP, pasid: 5, iova: 0x40_1000, access: DmaAccess.WRITE, reason: NestedFaultReason.MAPPING },
    ]);
    expect(r(DmaReg.IRQ_STATUS)).toBe(DmaIrq.ERROR);
    expect(irq.raised).toBe(1);
    w(DmaReg.IRQ_ACK, DmaIrq.ERROR);
    expect(r(DmaReg.IRQ_STATUS)).toBe(0);
    expect(irq.lowered).toBe(1);
  });

  it('reports a permission fault for a write to a read-only page, and a bus error off RAM', () => {
    iommu.map(EP, NO_PASID, 0, RAM, PAGE, FakePerm.READ);
    iommu.map(EP, NO_PASID, PAGE, RAM + PAGE, PAGE, FakePerm.READ);
    program(DmaOp.COPY, 0, PAGE, 16);
    expect(r(DmaReg.ERROR)).toBe(DmaError.TRANSLATION);
    expect(r(DmaReg.FAULT_REASON)).toBe(NestedFaultReason.PERMISSION);
    iommu.map(EP, NO_PASID, 2 * PAGE, 0x5000_0000, PAGE); // translated outside guest RAM
    program(DmaOp.FILL, 0, 2 * PAGE + 4, 4);
    expect(r(DmaReg.ERROR)).toBe(DmaError.BUS);
    expect(r(DmaReg.FAULT_ADDR_LO)).toBe(2 * PAGE + 4);
    expect(r(DmaReg.BYTES_DONE)).toBe(0);
  });

  it('refuses bad programming before touching memory', () => {
    iommu.map(EP, NO_PASID, 0, RAM, PAGE);
    const cases: [() => void, number][] = [
      [() => program(7, 0, 0, 16), DmaError.BAD_OP],
      [() => program(DmaOp.COPY, 0, 0, 0), DmaError.BAD_LENGTH],
      [() => program(DmaOp.COPY, 0, 0, 64 * 1024 * 1024 + 1), DmaError.BAD_LENGTH],
      [() => program(DmaOp.COPY, 0, 0, 16, 2 ** 20), DmaError.BAD_PASID],
      [() => program(DmaOp.FILL, 0, 2 ** 64 - PAGE, PAGE + 1), DmaError.RANGE],
    ];
    for (const [run, error] of cases) {
      run();
      expect(r(DmaReg.STATUS)).toBe(DmaStatus.ERROR);
      expect(r(DmaReg.ERROR)).toBe(error);
    }
    w(DmaReg.PASID, DMA_PASID_VALID | 0x0010_0000 | 1); // reserved bit 20
    w(DmaReg.DOORBELL, 1);
    expect(r(DmaReg.ERROR)).toBe(DmaError.BAD_PASID);
    expect(iommu.translations).toBe(0);
    expect(r(DmaReg.COMPLETED)).toBe(6);
  });

  it('rejects a PASID on an engine built without PASID support', () => {
    setup(0);
    expect(r(DmaReg.CAPS) & 1).toBe(0);
    iommu.map(EP, 1, 0, RAM, PAGE);
    program(DmaOp.FILL, 0, 0, 16, 1);
    expect(r(DmaReg.ERROR)).toBe(DmaError.BAD_PASID);
  });

  it('reaches the top of the 64-bit IOVA space exactly', () => {
    setup(20, () => iommu);
    const top = 2 ** 64 - PAGE;
    iommu.map(EP, NO_PASID, top, RAM + 3 * PAGE, PAGE);
    w(DmaReg.FILL, 0x5c);
    w(DmaReg.DST_LO, 0xffff_f000);
    w(DmaReg.DST_HI, 0xffff_ffff);
    w(DmaReg.LENGTH, PAGE);
    w(DmaReg.OP, DmaOp.FILL);
    w(DmaReg.DOORBELL, 1);
    expect(r(DmaReg.STATUS)).toBe(DmaStatus.DONE);
    expect(memory.readU8(RAM + 4 * PAGE - 1)).toBe(0x5c);
  });

  it('with no IOMMU, IOVA is the guest-physical address', () => {
    setup(20, () => identityTranslator);
    memory.fill(RAM, PAGE, 0x33);
    program(DmaOp.COPY, RAM, RAM + 5 * PAGE + 1, PAGE);
    expect(r(DmaReg.STATUS)).toBe(DmaStatus.DONE);
    expect(memory.read(RAM + 5 * PAGE + 1, PAGE).every((b) => b === 0x33)).toBe(true);
  });

  it('never throws and always ends in DONE or ERROR, whatever the guest writes', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            offset: fc.integer({ min: 0, max: 0x70 }),
            size: fc.constantFrom(1 as const, 2 as const, 4 as const, 8 as const),
            value: fc.nat(),
          }),
          { maxLength: 30 },
        ),
        (writes) => {
          setup();
          iommu.map(EP, NO_PASID, 0, RAM, 4 * PAGE);
          for (const { offset, size, value } of writes) engine.write(offset, size, value);
          w(DmaReg.LENGTH, (r(DmaReg.LENGTH) % (8 * PAGE)) + 1);
          w(DmaReg.DOORBELL, 1);
          return [DmaStatus.DONE, DmaStatus.ERROR].includes(r(DmaReg.STATUS) as 2 | 3);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('DMA engine with a translator that translates runs of pages', () => {
  it('forgets what it translated ahead when a transfer ends: an UNMAP in between is seen', () => {
    const runs = new FakeIommu({ batched: true });
    setup(20, () => runs);
    runs.map(EP, NO_PASID, 0, RAM, 8 * PAGE);
    memory.fill(RAM, 4 * PAGE, 0x5a);
    program(DmaOp.COPY, 0, 4 * PAGE, 4 * PAGE);
    expect(r(DmaReg.STATUS)).toBe(DmaStatus.DONE);
    runs.unmap(EP, NO_PASID, 2 * PAGE, PAGE);
    program(DmaOp.COPY, 0, 4 * PAGE, 4 * PAGE);
    expect(r(DmaReg.ERROR)).toBe(DmaError.TRANSLATION);
    expect(r(DmaReg.FAULT_ADDR_LO)).toBe(2 * PAGE);
    expect(r(DmaReg.FAULT_ACCESS)).toBe(0);
    expect(r(DmaReg.BYTES_DONE)).toBe(2 * PAGE);
    // One fault, for the page the transfer reached; none for what was translated ahead.
    expect(runs.faults).toEqual([
      {
        endpoint: EP,
        pasid: NO_PASID,
        iova: 2 * PAGE,
        access: DmaAccess.READ,
        reason: NestedFaultReason.MAPPING,
      },
    ]);
  });

  it('does not trust the count a translator returns, and survives one that throws', () => {
    for (const answer of [Number.NaN, 99, -3, 'throw'] as const) {
      const fake = new FakeIommu();
      setup(20, () => ({
        name: 'odd',
        translatePage: (endpoint, pasid, page, access, out) =>
          fake.translatePage(endpoint, pasid, page, access, out),
        translatePages: () => {
          if (answer === 'throw') throw new Error('translator bug');
          return answer;
        },
      }));
      fake.map(EP, NO_PASID, 0, RAM, 8 * PAGE);
      memory.fill(RAM, 2 * PAGE, 0x77);
      program(DmaOp.COPY, 0, 4 * PAGE, 2 * PAGE);
      if (answer === 'throw') {
        expect(r(DmaReg.ERROR)).toBe(DmaError.TRANSLATION);
        expect(r(DmaReg.BYTES_DONE)).toBe(0);
      } else {
        // Page by page instead: the copy is whole.
        expect(r(DmaReg.STATUS)).toBe(DmaStatus.DONE);
        expect(memory.read(RAM + 4 * PAGE, 2 * PAGE).every((b) => b === 0x77)).toBe(true);
      }
    }
  });
});
