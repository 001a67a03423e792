/**
 * Fuzz entry points, one per surface that parses guest memory or guest register writes. Each
 * input builds a fresh machine, so a failure reproduces from its input alone.
 */
import { createNestedTranslation, DmaAccess, NO_PASID, VirtioMmioReg } from '@vmmkit/core';
import { createTestMemory, MockSplitQueue } from '@vmmkit/core/testing';
import { ArmLpaeNestedBackend, ArmSmmuV3PasidBackend, smmuv3Plugin } from '@vmmkit/smmuv3';
import { encodeAttach, Status } from '@vmmkit/virtio-iommu';
import { createVirtioIommuHarness, POISON, requestStatus } from '@vmmkit/virtio-iommu/testing';
import fc from 'fast-check';
import { scenarioArb } from '../isolation/actions.js';
import { type RunStats, runScenario } from '../isolation/run.js';
import { createRawDevice, RAW_RAM } from '../testing/raw-device.js';
import { dmaRegisters } from './dma-registers.js';
import { mmioInit } from './mmio-init.js';
import { smmu } from './smmu.js';
import { expectThat, type Surface, surface } from './surface.js';

const RAM = 0x4000_0000;
const RAM_SIZE = 1 << 20;
const inRam = (pa: number, len = 1) => pa >= RAM && pa + len <= RAM + RAM_SIZE;

/** Readable bytes of each request type (virtio 1.2 §5.13.6, PROTOCOL.md for 6 and 7). */
const READABLE_SIZE: Record<number, number> = { 1: 20, 2: 20, 3: 36, 4: 28, 5: 72, 6: 84, 7: 60 };

/** Raw virtio-iommu requests: any bytes, any type, any split of readable and writable parts. */
const requests = surface({
  name: 'requests',
  description: 'raw virtio-iommu requests (any type byte, length, descriptor split)',
  input: fc.array(
    fc.record({
      type: fc.oneof(
        { weight: 4, arbitrary: fc.integer({ min: 1, max: 7 }) },
        { weight: 1, arbitrary: fc.integer({ min: 0, max: 9 }) },
      ),
      // null: exactly the type's readable size, built from `fields` (deeper checks run).
      body: fc.oneof(
        { weight: 2, arbitrary: fc.constant(null) },
        { weight: 1, arbitrary: fc.uint8Array({ maxLength: 96 }) },
      ),
      // Mostly zeros with small values, so IDs name existing endpoints and domains.
      fields: fc.array(
        fc.oneof(
          { weight: 6, arbitrary: fc.constant(0) },
          { weight: 2, arbitrary: fc.integer({ min: 1, max: 3 }) },
          { weight: 1, arbitrary: fc.nat(255) },
        ),
        { minLength: 83, maxLength: 83 },
      ),
      split: fc.nat({ max: 3 }),
      // null: Linux's exact framing for the type (tail; PROBE: probe_size 512 + tail); or anything.
      writable: fc.oneof(
        { weight: 3, arbitrary: fc.constant(null) },
        { weight: 1, arbitrary: fc.constantFrom([4], [516], [256, 260], [2, 2]) },
        { weight: 1, arbitrary: fc.array(fc.integer({ min: 0, max: 600 }), { maxLength: 3 }) },
      ),
    }),
    { minLength: 1, maxLength: 8 },
  ),
  async run(list) {
    const h = createVirtioIommuHarness({
      endpoints: [{ id: 1 }, { id: 2 }],
      memorySize: 2 << 20,
      plugins: [smmuv3Plugin],
    });
    const labels = new Set<string>();
    let broken: string | null = null;
    h.device.on('broken', (reason) => {
      broken = reason;
    });
    for (const r of list) {
      const body = r.body ?? Uint8Array.from(r.fields.slice(0, (READABLE_SIZE[r.type] ?? 4) - 1));
      const bytes = new Uint8Array(body.length + 1);
      bytes[0] = r.type;
      bytes.set(body, 1);
      const cut = Math.min(bytes.length, r.split * 8);
      const readable =
        cut > 0 && cut < bytes.length ? [bytes.subarray(0, cut), bytes.subarray(cut)] : [bytes];
      const writable: readonly number[] = r.writable ?? [r.type === 5 ? 516 : 4];
      const total = writable.reduce((a: number, b: number) => a + b, 0);
      const { usedLength, written } = await h.submitChain(readable, writable);
      // The framing alone decides between "answered" and "returned unwritten" (README "Framing";
      // every feature is negotiated here): a known type, its whole readable part, and exactly
      // the tail (PROBE: 4 to probe_size + 4 bytes).
      const size = READABLE_SIZE[r.type];
      const framed =
        size !== undefined &&
        bytes.length >= size &&
        (r.type === 5 ? total >= 4 && total <= 516 : total === 4);
      expectThat(
        (usedLength !== 0) === framed,
        `type ${r.type}, ${bytes.length} readable, ${total} writable: used length ${usedLength}`,
      );
      if (usedLength === 0) {
        expectThat(
          written.every((b) => b === POISON),
          'a request returned with used length 0 was written',
        );
        labels.add('used 0');
      } else {
        // virtio 1.2 §5.13.6: the status is the last 4 bytes of the writable part.
        expectThat(usedLength === total, `used length ${usedLength} of a ${total}-byte writable part`);
        // Host work bounded by the protocol (README "Framing"): a 4-byte tail, or for PROBE
        // at most probe_size (512) bytes of properties and the tail.
        const limit = r.type === 5 ? 516 : 4;
        expectThat(usedLength <= limit, `type ${r.type} answered ${usedLength} bytes (limit ${limit})`);
        const status = written[total - 4]!;
        expectThat(status <= 8, `status ${status} is not one the spec names`);
        labels.add(`type ${r.type} S${status}`);
      }
    }
    // Well-formed chains with any bytes in them never break the queue.
    expectThat(broken === null, `the device wants a reset: ${broken}`);
    return [...labels].sort().join(' ');
  },
});

const rawDescriptor = fc.record({
  addr: fc.oneof(
    fc.integer({ min: RAM, max: RAM + RAM_SIZE }),
    fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
    fc.constantFrom(0, RAM + RAM_SIZE - 1),
  ),
  len: fc.oneof(fc.integer({ min: 0, max: 64 }), fc.constantFrom(0xffff_ffff, 0x8000_0000, 4096)),
  flags: fc.integer({ min: 0, max: 7 }),
  next: fc.integer({ min: 0, max: 0xffff }),
});

/** Descriptor chains and ring indexes a hostile driver writes; the device side pops them. */
const rings = surface({
  name: 'rings',
  description: 'split-ring descriptor tables, avail ring and indexes (chains, loops, indirect)',
  input: fc.record({
    size: fc.constantFrom(1, 2, 8, 16, 256),
    indirect: fc.boolean(),
    descriptors: fc.array(rawDescriptor, { maxLength: 20 }),
    heads: fc.array(
      fc.oneof({ weight: 6, arbitrary: fc.nat(15) }, { weight: 1, arbitrary: fc.nat(0xffff) }),
      {
        maxLength: 10,
      },
    ),
    // Mostly the index the pushes left; sometimes a wild one (DEVICE_NEEDS_RESET).
    availIdx: fc.oneof(
      { weight: 5, arbitrary: fc.constant(undefined) },
      { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffff }) },
    ),
    indirectTable: fc.array(rawDescriptor, { maxLength: 8 }),
  }),
  run(input) {
    const { memory } = createTestMemory({ base: RAM, size: RAM_SIZE });
    const mock = new MockSplitQueue(memory, RAM + 0x1000, input.size);
    const queue = mock.deviceQueue({ indirect: input.indirect });
    input.descriptors.forEach((d, i) => {
      if (i < input.size) mock.writeDescriptor(i, d);
    });
    mock.writeTable(RAM + 0x8_0000, input.indirectTable);
    for (const h of input.heads) mock.pushAvail(h);
    if (input.availIdx !== undefined) mock.setAvailIdx(input.availIdx);
    const outcomes = new Set<string>();
    // Bounded: a queue never yields more chains than the driver could have made available.
    for (let i = 0; i <= 0x1_0000; i++) {
      const popped = queue.pop();
      if (popped === null) break;
      expectThat(i < 0x1_0000, 'the queue kept yielding chains');
      if (popped.ok) {
        const c = popped.chain;
        for (const s of [...c.readable, ...c.writable]) {
          expectThat(
            s.len === 0 || inRam(s.addr, s.len),
            `segment ${s.addr.toString(16)}+${s.len} outside guest RAM`,
          );
        }
        outcomes.add('chain');
        queue.pushUsed(c.head, 0);
      } else {
        outcomes.add(popped.error);
        queue.pushUsed(popped.head, 0);
      }
      if (queue.broken) break;
    }
    if (queue.broken) outcomes.add('needs-reset');
    return [...outcomes].sort().join(' ') || 'empty';
  },
});

/** SMMUv3 CDs, L1 descriptors and LPAE page tables as raw guest bytes, walked by the arm backends. */
const tables = surface({
  name: 'tables',
  description: 'STE/CD/L1CD and LPAE page-table bytes walked by the arm nested backends (formats 1, 2)',
  input: fc.record({
    format: fc.constantFrom(1, 2),
    /** Raw payload bytes, or (absent) fields in range with reserved bytes zero so walks run. */
    raw: fc.oneof(
      { weight: 4, arbitrary: fc.constant(undefined) },
      { weight: 1, arbitrary: fc.uint8Array({ minLength: 66, maxLength: 66 }) },
    ),
    fields: fc.tuple(fc.nat(2), fc.nat(2), fc.nat(12), fc.nat()),
    pointerPage: fc.integer({ min: 0, max: 255 }),
    pages: fc.array(
      fc.record({
        page: fc.integer({ min: 0, max: 255 }),
        bytes: fc.uint8Array({ minLength: 8, maxLength: 512 }),
      }),
      { maxLength: 12 },
    ),
    walks: fc.array(
      fc.record({
        pasid: fc.constantFrom(NO_PASID, 0, 1, 3, 1023, 0xf_ffff),
        iova: fc.oneof(fc.integer({ min: 0, max: 2 ** 48 - 1 }), fc.integer({ min: 0, max: 0x20_0000 })),
        write: fc.boolean(),
      }),
      { minLength: 1, maxLength: 8 },
    ),
  }),
  run(input) {
    const { memory } = createTestMemory({ base: RAM, size: RAM_SIZE });
    for (const p of input.pages) memory.write(RAM + p.page * 0x1000, p.bytes.subarray(0, 0x1000));
    const payload = new Uint8Array(68);
    const view = new DataView(payload.buffer);
    const [s1fmt, s1dss, s1cdmax, bits] = input.fields;
    if (input.raw !== undefined) payload.set(input.raw, 2);
    else if (input.format === 2) {
      view.setUint8(2, s1fmt);
      view.setUint8(3, s1dss);
      view.setUint32(4, s1cdmax, true);
    } else {
      view.setUint16(2, bits & 0xffff, true);
      // TCR_EL1: T0SZ 16..39, IRGN0/ORGN0/SH0 write-back inner-shareable, TG0, EPD1; IPS.
      view.setUint32(
        8,
        (16 + (bits % 24)) | (1 << 8) | (1 << 10) | (3 << 12) | (((bits >>> 5) & 3) << 14) | (1 << 23),
        true,
      );
      view.setUint32(12, (bits >>> 8) & 7, true);
      view.setBigUint64(24, 0xf404ff44n, true);
    }
    view.setUint16(0, input.format, true);
    // Point the table into RAM most of the time, so walks go past the attach checks.
    if (input.format === 2)
      new DataView(payload.buffer).setBigUint64(8, BigInt(RAM + input.pointerPage * 0x1000), true);
    else new DataView(payload.buffer).setBigUint64(16, BigInt(RAM + input.pointerPage * 0x1000), true);
    const backend = input.format === 2 ? new ArmSmmuV3PasidBackend() : new ArmLpaeNestedBackend();
    const attached = backend.attach({ memory, endpoint: 1, payload, pasidBits: 20 });
    if (!attached.ok) return `attach refused ${attached.status}`;
    const out = createNestedTranslation();
    const outcomes = new Set<string>();
    for (const w of input.walks) {
      const ok = attached.table.translate(w.pasid, w.iova, w.write ? DmaAccess.WRITE : DmaAccess.READ, out);
      if (ok) {
        // Stage 2 is the identity over guest RAM here: an output beyond 2^53 or negative is a host bug.
        expectThat(Number.isSafeInteger(out.pa) && out.pa >= 0, `translation to ${out.pa}`);
        outcomes.add('ok');
      } else outcomes.add(`fault ${out.fault}`);
    }
    return [...outcomes].sort().join(' ');
  },
});

/** The virtio-mmio register file of the virtio-iommu transport: any offset, size and value. */
const mmio = surface({
  name: 'mmio',
  description: 'virtio-mmio v2 register file (any offset, width, value; config space; notify)',
  input: fc.array(
    fc.record({
      // The named registers as often as any offset (config space at 0x100 included).
      offset: fc.oneof(
        fc.constantFrom(...Object.values(VirtioMmioReg)),
        fc.integer({ min: 0, max: 0x1ff }),
        fc.integer({ min: 0, max: 0xfff }),
      ),
      size: fc.constantFrom(1 as const, 2 as const, 4 as const, 8 as const),
      write: fc.boolean(),
      value: fc.oneof(fc.nat(), fc.constantFrom(0, 0xf, 0xffff_ffff, 2 ** 32 - 1, 0x8b)),
    }),
    { minLength: 1, maxLength: 40 },
  ),
  async run(accesses) {
    const h = createVirtioIommuHarness({ endpoints: [{ id: 1 }], memorySize: 2 << 20 });
    let reads = 0;
    for (const a of accesses) {
      if (a.write) h.transport.write(a.offset, a.size, a.value >>> 0);
      else {
        const v = h.transport.read(a.offset, a.size);
        expectThat(Number.isInteger(v), `read of ${a.offset} returned ${v}`);
        reads++;
      }
    }
    const status = h.transport.read(0x70, 4);
    // Whatever the guest wrote, a reset (virtio 1.2 §4.2.2.1: writing 0 to Status) brings the
    // device back: a Linux-style negotiation works and a request is served.
    h.restart();
    const attach = await requestStatus(h, encodeAttach({ domain: 1, endpoint: 1 }));
    expectThat(attach === Status.OK, `after a reset the device answered ATTACH with ${attach}`);
    return `status ${status & 0xff} reads ${reads > 0}`;
  },
});

/** Event-queue buffers a hostile driver posts (short, read-only, out of RAM), then a fault storm. */
const eventQueue = surface({
  name: 'eventq',
  description: 'event-queue buffers (lengths, directions, addresses) under a fault storm',
  input: fc.record({
    buffers: fc.array(
      fc.record({
        addr: fc.oneof(
          fc.integer({ min: RAW_RAM + 0x4_0000, max: RAW_RAM + 0x8_0000 }),
          fc.constantFrom(0, 2 ** 40),
        ),
        len: fc.oneof(fc.constantFrom(24, 24, 23, 0, 4096), fc.nat(64)),
        write: fc.oneof(
          { weight: 5, arbitrary: fc.constant(true) },
          { weight: 1, arbitrary: fc.constant(false) },
        ),
      }),
      { maxLength: 12 },
    ),
    faults: fc.integer({ min: 0, max: 40 }),
  }),
  run(input) {
    const raw = createRawDevice({ memorySize: 1 << 20, bypass: false });
    input.buffers.forEach((b, i) => {
      raw.events.addChain([b], i);
    });
    raw.device.notify(1);
    for (let i = 0; i < input.faults; i++)
      raw.device.translate({ endpoint: 1, iova: i * 0x1000, access: 'read' });
    const s = raw.device.faultStats;
    // Every fault is delivered or dropped and counted; never more deliveries than buffers.
    expectThat(s.raised === input.faults, `raised ${s.raised} of ${input.faults}`);
    expectThat(
      s.delivered + s.dropped === s.raised,
      `delivered ${s.delivered} + dropped ${s.dropped} != ${s.raised}`,
    );
    expectThat(
      s.delivered <= input.buffers.length,
      `${s.delivered} reports in ${input.buffers.length} buffers`,
    );
    for (const used of raw.events.usedSince(0))
      expectThat(used.len === 0 || used.len === 24, `used length ${used.len}`);
    return `delivered ${Math.min(s.delivered, 3)}${s.delivered > 3 ? '+' : ''} dropped ${s.dropped > 0}${raw.resets.length > 0 ? ' reset' : ''}`;
  },
});

/** The whole-stack isolation scenario as a fuzz surface (long passes find deeper sequences). */
const isolation = surface({
  name: 'isolation',
  description: 'guest action sequences against the reference model (the isolation property)',
  input: scenarioArb,
  run(scenario) {
    const stats: RunStats = { statuses: new Map(), dma: new Map() };
    runScenario(scenario, stats);
    // Outcome: which kinds of DMA result the sequence reached (done, fault, bus error, ...).
    return (
      [...stats.dma.keys()]
        .map((k) => k.replace(/ \d+$/, ''))
        .sort()
        .filter((k, i, a) => a.indexOf(k) === i)
        .join(', ') || 'no DMA'
    );
  },
});

export const SURFACES: readonly Surface[] = [
  requests,
  rings,
  tables,
  smmu,
  mmio,
  mmioInit,
  dmaRegisters,
  eventQueue,
  isolation,
];
