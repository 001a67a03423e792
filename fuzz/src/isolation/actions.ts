/**
 * What a hostile guest may do, as fast-check arbitraries: requests with valid, overlapping,
 * splitting and out-of-range arguments, nested tables built with the guest libraries or raw
 * corrupt bytes, table rewrites with and without INVALIDATE, and DMA by several endpoints and
 * PASIDs at addresses chosen to hit mappings, their edges, reserved regions and the top of the
 * 64-bit space.
 */
import fc from 'fast-check';

/** IOVA pages the guest aims at: low pages, nested range, RAM (identity), reserved/MSI, beyond 48 bits, top of 2^64. */
export const IOVA_PAGES: readonly bigint[] = [
  0n,
  1n,
  2n,
  3n,
  4n,
  5n,
  8n,
  15n,
  16n,
  0x100n,
  0x101n,
  0x102n,
  0x103n,
  0x108n,
  0x8000n, // MSI region of endpoint 3
  0x8000_0n, // reserved region of endpoint 3
  0x4000_0n, // guest RAM base (identity targets in the DMA region)
  0x4000_2n,
  (1n << 36n) - 1n, // last page below 2^48
  1n << 36n, // first page at 2^48
  (1n << 52n) - 2n,
  (1n << 52n) - 1n, // last page of the 64-bit space
];

export const NESTED_IOVA_PAGE = 0x100;
export const NESTED_PAGES = 16;

const domain = fc.oneof(
  { weight: 12, arbitrary: fc.integer({ min: 1, max: 3 }) },
  { weight: 3, arbitrary: fc.integer({ min: 4, max: 8 }) },
  { weight: 1, arbitrary: fc.constantFrom(0, 33, 0xffff_ffff) },
);
const endpoint = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(1, 2, 3) },
  { weight: 1, arbitrary: fc.constant(9) },
);
const iovaPage = fc.constantFrom(...IOVA_PAGES);
/** Sub-page offsets: mostly aligned, sometimes not (S_RANGE). */
const misalign = fc.oneof(
  { weight: 8, arbitrary: fc.constant(0n) },
  { weight: 1, arbitrary: fc.constantFrom(1n, 0x7ffn, 0xfffn) },
);
const pasid = fc.option(fc.constantFrom(0, 1, 2, 5, 15, 16, 0xf_ffff), { nil: undefined, freq: 3 });
const tableIndex = fc.integer({ min: 0, max: 2 });

export type Action =
  | { kind: 'attach'; domain: number; endpoint: number; flags: number; reserved: number }
  | { kind: 'detach'; domain: number; endpoint: number }
  | {
      kind: 'map';
      domain: number;
      page: bigint;
      pages: bigint;
      startOff: bigint;
      endOff: bigint;
      phys: number;
      flags: number;
    }
  | { kind: 'unmap'; domain: number; page: bigint; pages: bigint; reserved: number }
  | { kind: 'attach-table'; table: number; endpoint: number; s1dss: 0 | 1 | 2 }
  | {
      kind: 'attach-corrupt';
      domain: number;
      endpoint: number;
      format: number;
      flags: number;
      payload: Uint8Array;
    }
  | { kind: 'add-pasid'; table: number; pasid: number; invalidate: boolean }
  | { kind: 'remove-pasid'; table: number; pasid: number; invalidate: boolean }
  | {
      kind: 'pte';
      table: number;
      pasid: number;
      page: number;
      target: number | null;
      write: boolean;
      invalidate: 'none' | 'va' | 'pasid' | 'domain';
    }
  | { kind: 'corrupt-table'; table: number; pick: number; bytes: Uint8Array }
  | {
      kind: 'invalidate-raw';
      domain: number;
      granularity: number;
      caches: number;
      flags: number;
      pasid: number;
      archid: number;
      page: number;
      nrPages: number;
      granule: number;
    }
  | { kind: 'bypass'; value: number }
  | {
      kind: 'dma';
      endpoint: number;
      pasid: number | undefined;
      page: bigint;
      offset: number;
      length: number;
      op: 'fill' | 'crc32';
      value: number;
    }
  | {
      kind: 'translate';
      endpoint: number;
      pasid: number | undefined;
      page: bigint;
      offset: number;
      length: number;
      write: boolean;
    };

/** Physical targets: region pages (index), or special: -1 beyond RAM, -2 the reserved region, -3 top of 2^64. */
const physTarget = fc.oneof(
  { weight: 10, arbitrary: fc.integer({ min: 0, max: 63 }) },
  { weight: 1, arbitrary: fc.constantFrom(-1, -2, -3) },
);

export const actionArb: fc.Arbitrary<Action> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('attach' as const),
      domain,
      endpoint,
      flags: fc.oneof(
        { weight: 6, arbitrary: fc.constant(0) },
        { weight: 2, arbitrary: fc.constant(1) },
        { weight: 1, arbitrary: fc.constantFrom(2, 0x8000_0000) },
      ),
      reserved: fc.oneof({ weight: 9, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constant(1) }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('detach' as const), domain, endpoint }) },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('map' as const),
      domain,
      page: iovaPage,
      pages: fc.bigInt({ min: 1n, max: 4n }),
      startOff: misalign,
      endOff: misalign,
      phys: physTarget,
      flags: fc.oneof(
        { weight: 8, arbitrary: fc.integer({ min: 0, max: 7 }) },
        { weight: 1, arbitrary: fc.constant(8) },
      ),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('unmap' as const),
      domain,
      page: iovaPage,
      pages: fc.bigInt({ min: 0n, max: 6n }),
      reserved: fc.oneof({ weight: 9, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constant(4) }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('attach-table' as const),
      table: tableIndex,
      endpoint,
      s1dss: fc.constantFrom(0 as const, 1 as const, 2 as const),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('attach-corrupt' as const),
      domain,
      endpoint,
      format: fc.constantFrom(1, 2, 2, 3, 0, 0xffff),
      flags: fc.oneof({ weight: 5, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constant(1) }),
      payload: fc.uint8Array({ minLength: 66, maxLength: 66 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('add-pasid' as const),
      table: tableIndex,
      pasid: fc.constantFrom(0, 1, 2, 5, 15),
      invalidate: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('remove-pasid' as const),
      table: tableIndex,
      pasid: fc.constantFrom(0, 1, 2, 5, 15),
      invalidate: fc.boolean(),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('pte' as const),
      table: tableIndex,
      pasid: fc.constantFrom(0, 1, 2, 5, 15),
      page: fc.integer({ min: 0, max: NESTED_PAGES - 1 }),
      target: fc.option(fc.integer({ min: 0, max: 63 }), { nil: null, freq: 4 }),
      write: fc.boolean(),
      invalidate: fc.constantFrom('none' as const, 'va' as const, 'pasid' as const, 'domain' as const),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('corrupt-table' as const),
      table: tableIndex,
      pick: fc.nat(),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('invalidate-raw' as const),
      domain: fc.oneof(domain, fc.constantFrom(20, 21, 22)),
      granularity: fc.constantFrom(0, 1, 2, 3, 4, 8),
      caches: fc.integer({ min: 0, max: 15 }),
      flags: fc.integer({ min: 0, max: 15 }),
      pasid: fc.constantFrom(0, 1, 2, 5),
      archid: fc.integer({ min: 0, max: 8 }),
      page: fc.integer({ min: 0, max: 0x200 }),
      nrPages: fc.integer({ min: 0, max: 32 }),
      granule: fc.constantFrom(12, 16, 21, 63, 64),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('bypass' as const), value: fc.integer({ min: 0, max: 255 }) }),
  },
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant('dma' as const),
      endpoint,
      pasid,
      page: fc.oneof(
        iovaPage,
        fc.constantFrom(0n, 1n, 2n, 4n, 0x4000_0n),
        fc.integer({ min: NESTED_IOVA_PAGE, max: NESTED_IOVA_PAGE + 3 }).map(BigInt),
      ),
      offset: fc.constantFrom(0, 0, 1, 0x800, 0xfff),
      length: fc.constantFrom(1, 8, 8, 64, 0x1000, 0x1801, 0x3000),
      op: fc.constantFrom('fill' as const, 'crc32' as const),
      value: fc.integer({ min: 0, max: 255 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('translate' as const),
      endpoint,
      pasid,
      page: fc.oneof(
        iovaPage,
        fc.integer({ min: NESTED_IOVA_PAGE, max: NESTED_IOVA_PAGE + NESTED_PAGES - 1 }).map(BigInt),
      ),
      offset: fc.constantFrom(0, 0xfff),
      length: fc.constantFrom(1, 0x1000, 0x2001),
      write: fc.boolean(),
    }),
  },
);

/** A guest that sets things up first (attaches, maps, a nested table), then anything goes. */
const setupArb: fc.Arbitrary<Action[]> = fc
  .tuple(
    fc.array(fc.record({ domain: fc.integer({ min: 1, max: 3 }), endpoint: fc.constantFrom(1, 2, 3) }), {
      minLength: 1,
      maxLength: 3,
    }),
    fc.array(
      fc.record({
        domain: fc.integer({ min: 1, max: 3 }),
        page: fc.constantFrom(0n, 1n, 2n, 4n, 0x4000_0n, (1n << 52n) - 2n),
        pages: fc.bigInt({ min: 1n, max: 2n }),
        phys: fc.integer({ min: 0, max: 63 }),
        flags: fc.integer({ min: 1, max: 3 }),
      }),
      { minLength: 1, maxLength: 6 },
    ),
    fc.constantFrom(0 as const, 1 as const, 2 as const),
    fc.constantFrom(2, 3, 3),
  )
  .map(([attaches, maps, s1dss, tableEndpoint]) => [
    ...attaches.map((a): Action => ({ kind: 'attach', ...a, flags: 0, reserved: 0 })),
    ...maps.map((m): Action => ({ kind: 'map', ...m, startOff: 0n, endOff: 0n })),
    { kind: 'attach-table', table: 0, endpoint: tableEndpoint, s1dss },
    { kind: 'add-pasid', table: 0, pasid: 1, invalidate: true },
    { kind: 'add-pasid', table: 0, pasid: 0, invalidate: true },
    { kind: 'pte', table: 0, pasid: 1, page: 0, target: 10, write: true, invalidate: 'none' },
    { kind: 'pte', table: 0, pasid: 0, page: 1, target: 11, write: false, invalidate: 'none' },
  ]);

export const scenarioArb = fc
  .record({
    bypass: fc.boolean(),
    narrowInput: fc.boolean(),
    setup: setupArb,
    actions: fc.array(actionArb, { minLength: 1, maxLength: 60, size: 'medium' }),
  })
  .map(({ bypass, narrowInput, setup, actions }) => ({
    bypass,
    narrowInput,
    actions: [...setup, ...actions],
  }));
export type Scenario = { bypass: boolean; narrowInput: boolean; actions: Action[] };
