/**
 * DMA engine registers programmed by a hostile guest, behind the virtio-iommu: a transfer
 * (mostly well-formed, aimed at a mapped window, its read-only page, its edges, identity RAM or
 * the top of 2^64), then any register writes on top. Guest RAM is filled with canaries first,
 * and afterwards every changed byte must be one the IOMMU lets the endpoint write.
 */
import { encodeAttach, encodeMap, MapFlag, Status } from '@vmmkit/virtio-iommu';
import { createVirtioIommuHarness, requestStatus } from '@vmmkit/virtio-iommu/testing';
import { DMA_PASID_VALID, DMA_WINDOW_SIZE, DmaEngine, DmaReg, DmaStatus } from '@vmmkit/vmm';
import fc from 'fast-check';
import { iommuTranslator } from '../world.js';
import { expectThat, surface } from './surface.js';

const RAM = 0x4000_0000;
/** The harness keeps its rings in the upper half of RAM; the lower 1 MiB is free for canaries. */
const SCRATCH = 1 << 20;
/** IOVA window mapped read-write (4 pages), then one read-only page. */
const WINDOW = 0x10_0000;
const RW_BYTES = 0x4000;
const PHYS = RAM + 0x8_0000;

const canary = (offset: number) => (offset * 29 + 0x5a) & 0xff;

/** A 64-bit IOVA as two 32-bit halves. */
const iova = fc.oneof(
  { weight: 6, arbitrary: fc.nat(RW_BYTES + 0x1fff).map((o) => [WINDOW - 0x1000 + o, 0] as const) },
  { weight: 2, arbitrary: fc.nat(SCRATCH - 1).map((o) => [RAM + o, 0] as const) },
  { weight: 1, arbitrary: fc.tuple(fc.nat(0xffff_ffff), fc.constantFrom(0, 1, 0xffff_ffff)) },
);

const program = fc.record({
  op: fc.oneof({ weight: 8, arbitrary: fc.constantFrom(0, 1, 2) }, { weight: 1, arbitrary: fc.nat(0xff) }),
  src: iova,
  dst: iova,
  length: fc.oneof(
    { weight: 6, arbitrary: fc.integer({ min: 1, max: 0x6000 }) },
    { weight: 1, arbitrary: fc.constantFrom(0, 0xffff_ffff, 64 * 1024 * 1024 + 1) },
  ),
  pasid: fc.oneof(
    { weight: 6, arbitrary: fc.constant(0) },
    { weight: 1, arbitrary: fc.constantFrom(DMA_PASID_VALID | 1, 0x7000_0000) },
  ),
  fill: fc.nat(0xff),
});

const noise = fc.record({
  offset: fc.oneof(
    fc.constantFrom(...Object.values(DmaReg)),
    fc.integer({ min: 0, max: DMA_WINDOW_SIZE + 8 }),
  ),
  size: fc.constantFrom(1 as const, 2 as const, 4 as const, 4 as const, 8 as const),
  value: fc.oneof(fc.nat(), fc.nat(0x3000), fc.constantFrom(0, 1, 2, 0xffff_ffff, 0x8000_0001, WINDOW)),
});

export const dmaRegisters = surface({
  name: 'dma-registers',
  description: 'DMA engine registers (addresses, lengths, PASID, op, doorbell) through the virtio-iommu',
  input: fc.record({
    bypass: fc.boolean(),
    attach: fc.boolean(),
    program,
    writes: fc.array(noise, { maxLength: 8 }),
  }),
  async run(input) {
    const h = createVirtioIommuHarness({ endpoints: [{ id: 1 }], memorySize: 2 << 20, bypass: input.bypass });
    if (input.attach) {
      const map = (start: number, bytes: number, flags: number) =>
        encodeMap({
          domain: 1,
          virtStart: start,
          virtEnd: start + bytes - 1,
          physStart: PHYS + start - WINDOW,
          flags,
        });
      expectThat((await requestStatus(h, encodeAttach({ domain: 1, endpoint: 1 }))) === Status.OK, 'ATTACH');
      expectThat(
        (await requestStatus(h, map(WINDOW, RW_BYTES, MapFlag.READ | MapFlag.WRITE))) === Status.OK,
        'MAP',
      );
      expectThat(
        (await requestStatus(h, map(WINDOW + RW_BYTES, 0x1000, MapFlag.READ))) === Status.OK,
        'MAP RO',
      );
    }
    const scratch = h.memory.view(RAM, SCRATCH);
    for (let i = 0; i < SCRATCH; i++) scratch[i] = canary(i);
    const translator = iommuTranslator(h.device);
    const engine = new DmaEngine('dma', h.memory, { raise() {} }, () => translator, 1, 20);
    const p = input.program;
    const w = (reg: number, value: number) => engine.write(reg, 4, value >>> 0);
    w(DmaReg.SRC_LO, p.src[0]);
    w(DmaReg.SRC_HI, p.src[1]);
    w(DmaReg.DST_LO, p.dst[0]);
    w(DmaReg.DST_HI, p.dst[1]);
    w(DmaReg.LENGTH, p.length);
    w(DmaReg.PASID, p.pasid);
    w(DmaReg.OP, p.op);
    w(DmaReg.FILL, p.fill);
    w(DmaReg.DOORBELL, 1);
    for (const n of input.writes) engine.write(n.offset, n.size, n.value >>> 0);
    const status = engine.read(DmaReg.STATUS, 4);
    const error = engine.read(DmaReg.ERROR, 4);
    expectThat(status === DmaStatus.DONE || status === DmaStatus.ERROR, `status ${status} after a doorbell`);
    // Isolation: what may the endpoint write? Its RW window when attached; any RAM when it is
    // unattached and bypass is on (nothing to check); nothing at all otherwise.
    const identity = !input.attach && input.bypass;
    if (!identity) {
      for (let i = 0; i < SCRATCH; i++) {
        if (scratch[i] === canary(i)) continue;
        const pa = RAM + i;
        const writable = input.attach && pa >= PHYS && pa < PHYS + RW_BYTES;
        expectThat(writable, `byte at 0x${pa.toString(16)} changed; the endpoint may not write it`);
      }
    }
    if (!input.attach && !input.bypass && status === DmaStatus.DONE) {
      // Only a transfer that touches no page can finish without a mapping, and none exists.
      expectThat(false, 'a DMA by an unattached endpoint without bypass completed');
    }
    const where = input.attach ? 'mapped' : input.bypass ? 'bypass' : 'blocked';
    return `${where} ${status === DmaStatus.DONE ? 'done' : `error ${error}`}`;
  },
});
