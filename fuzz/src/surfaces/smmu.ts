/**
 * The SMMUv3 model with a guest-owned stream table: STEs, L1 stream descriptors, CDs and LPAE
 * page tables in guest RAM (well-formed tables built as Linux would, then corrupted byte by
 * byte), CMDQ commands of any bytes, and transactions by any StreamID/SubstreamID/address.
 */
import { createTestMemory } from '@vmmkit/core/testing';
import { CmdOpcode, createTranslationOut, EventType, encodeSte, Smmuv3 } from '@vmmkit/smmuv3';
import { BumpAllocator, linuxCd, linuxSte, S1Tables, writeCd } from '@vmmkit/smmuv3/testing';
import fc from 'fast-check';
import { expectThat, surface } from './surface.js';

const RAM = 0x4000_0000;
const RAM_SIZE = 1 << 20;
const OAS = 48;
/** Pages the structured tables map: IOVA page i → RAM page `DATA_PAGE + i`. */
const MAPPED_PAGES = 8;
const DATA_PAGE = 0xc0;
const EVENT_TYPES = new Set<number>([0, ...Object.values(EventType)]);

type Op =
  | { kind: 'corrupt'; where: 'ste' | 'cd' | 'pt' | 'any'; offset: number; bytes: Uint8Array }
  | { kind: 'command'; opcode: number | null; bytes: Uint8Array }
  | { kind: 'translate'; sid: number; ssid: number; page: number; offset: number; access: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('corrupt' as const),
      where: fc.constantFrom('ste' as const, 'cd' as const, 'pt' as const, 'any' as const),
      offset: fc.nat(),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('command' as const),
      // Mostly a real opcode (the rest of the command arbitrary), so the decoders run deep.
      opcode: fc.option(fc.constantFrom(...Object.values(CmdOpcode)), { nil: null, freq: 4 }),
      bytes: fc.uint8Array({ minLength: 16, maxLength: 16 }),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('translate' as const),
      // Negative: one of the table's streams (−1 − n, modulo their number); else any StreamID.
      sid: fc.oneof(
        { weight: 8, arbitrary: fc.nat(3).map((n) => -1 - n) },
        { weight: 1, arbitrary: fc.nat(0xffff_ffff) },
      ),
      ssid: fc.oneof(
        { weight: 4, arbitrary: fc.constantFrom(-1, 0, 1, 2, 3) },
        { weight: 1, arbitrary: fc.nat(0xf_ffff) },
      ),
      page: fc.oneof(
        { weight: 6, arbitrary: fc.nat(MAPPED_PAGES) },
        { weight: 1, arbitrary: fc.nat(2 ** 36 - 1) },
      ),
      offset: fc.nat(0xfff),
      // AccessCode: read 0, write 1, exec 2, +3 privileged.
      access: fc.nat(5),
    }),
  },
);

/** The SMMUv3 model walking guest-owned stream tables, CDs and page tables. */
export const smmu = surface({
  name: 'smmu',
  description: 'SMMUv3 model: guest stream table (STEs, L1), CDs, LPAE tables, CMDQ commands',
  input: fc.record({
    format: fc.constantFrom('linear' as const, '2-level' as const),
    log2Size: fc.nat(2),
    s1cdmax: fc.nat(2),
    s1dss: fc.nat(3),
    ops: fc.array(opArb, { minLength: 1, maxLength: 40 }),
  }),
  run(input) {
    const { memory } = createTestMemory({ base: RAM, size: RAM_SIZE });
    const alloc = new BumpAllocator(memory, RAM);
    const smmu = new Smmuv3({ memory, oas: OAS, ssidBits: 20 });
    const streams = 2 ** input.log2Size;
    // Well-formed tables first (as Linux writes them): one linear CD table per stream, one LPAE
    // table per CD mapping MAPPED_PAGES pages. A two-level format points the SMMU at the same
    // bytes read as L1 descriptors — malformed from the start.
    const steBase = alloc.alloc(64 * streams, 64 * streams);
    const cdAreas: number[] = [];
    const ptAreas: number[] = [];
    const expected = new Map<string, number>();
    for (let sid = 0; sid < streams; sid++) {
      const cds = 2 ** input.s1cdmax;
      // IHI 0070 §5.2: a linear CD table is aligned to its size (the SMMU ignores the low bits).
      const cdBase = alloc.alloc(64 * cds, 64 * cds);
      cdAreas.push(cdBase);
      for (let ssid = 0; ssid < cds; ssid++) {
        const tables = new S1Tables(memory, alloc);
        ptAreas.push(tables.root);
        for (let p = 0; p < MAPPED_PAGES; p++) {
          const pa = RAM + (DATA_PAGE + ((sid * 3 + ssid + p) % 32)) * 0x1000;
          tables.map(p * 0x1000, pa);
          expected.set(`${sid}/${ssid}/${p}`, pa);
        }
        writeCd(memory, cdBase + 64 * ssid, linuxCd(tables, 1 + sid * 8 + ssid));
      }
      const ste = linuxSte({ s1ContextPtr: cdBase, s1cdmax: input.s1cdmax, s1dss: input.s1dss & 3 });
      memory.write(steBase + 64 * sid, encodeSte(ste));
    }
    smmu.setStreamTable({ base: steBase, log2Size: input.log2Size, format: input.format });
    const out = createTranslationOut();
    const outcomes = new Set<string>();
    let corrupted = input.format === '2-level';
    for (const op of input.ops) {
      if (op.kind === 'corrupt') {
        const area =
          op.where === 'ste' ? [steBase] : op.where === 'cd' ? cdAreas : op.where === 'pt' ? ptAreas : [RAM];
        const base = area[op.offset % area.length]!;
        const span =
          op.where === 'any'
            ? RAM_SIZE
            : op.where === 'pt'
              ? 0x1000
              : op.where === 'cd'
                ? 64 * 2 ** input.s1cdmax
                : 64 * streams;
        const at = base + ((op.offset >>> 4) % Math.max(1, span - op.bytes.length));
        memory.write(at, op.bytes);
        corrupted = true;
      } else if (op.kind === 'command') {
        const bytes = op.bytes.slice();
        if (op.opcode !== null) bytes[0] = op.opcode;
        const result = smmu.command(bytes);
        outcomes.add(result.ok ? 'cmd ok' : `cmd ${result.error}`);
      } else {
        const iova = op.page * 0x1000 + op.offset;
        const sid = op.sid < 0 ? (-1 - op.sid) % streams : op.sid;
        const ok = smmu.translateInto(sid, op.ssid, iova, op.access, out);
        if (ok) {
          // Outputs are OAS-bit physical addresses, exact as numbers; pages are 4 KiB or larger.
          expectThat(
            Number.isSafeInteger(out.pa) && out.pa >= 0 && out.pa < 2 ** OAS,
            `translation to ${out.pa}`,
          );
          expectThat(
            out.pageSize >= 0x1000 && (out.perm & ~7) === 0,
            `page ${out.pageSize} perm ${out.perm}`,
          );
          // Before any corruption the model must agree with the tables Linux-style code wrote.
          const ssid = op.ssid < 0 && (input.s1dss & 3) === 2 ? 0 : op.ssid;
          const want = expected.get(`${sid}/${ssid}/${op.page}`);
          if (!corrupted && want !== undefined) {
            expectThat(out.pa === want + op.offset, `sid ${sid} ssid ${op.ssid} page ${op.page}: ${out.pa}`);
          }
          outcomes.add('ok');
        } else {
          const type = out.event?.type ?? -1;
          expectThat(EVENT_TYPES.has(type), `fault without an architectural event (${type})`);
          outcomes.add(`event ${type.toString(16)}`);
        }
      }
    }
    return [...outcomes].sort().join(' ') || 'no transaction';
  },
});
