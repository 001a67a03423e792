import { DmaAccess, NO_PASID } from '@vmmkit/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FaultReason, MapFlag, Status } from '../protocol/constants.js';
import { encodeAttach, encodeDetach, encodeMap, encodeUnmap } from '../protocol/requests.js';
import { createVirtioIommuHarness, ReferenceMappings, requestStatus } from '../testing/index.js';
import { createPageTranslation } from './translator.js';

/**
 * The device keeps the pages it translated in a page cache (page-cache.ts). Whatever the guest
 * does between DMAs (MAP, UNMAP, ATTACH elsewhere, DETACH, reset), every way of translating
 * must answer what the mappings say at that moment (virtio 1.2 §5.13.6.5-6), as a reference
 * model computes it from scratch. Each translation is asked twice, so the second answer comes
 * from the cache whenever the first filled it.
 */

const PAGE = 0x1000n;
const U64_MAX = (1n << 64n) - 1n;
/** Bases that put the tested range across 2^32, at 2^52 and at the top of 2^64. */
const bases = [0n, (1n << 32n) - 16n * PAGE, 1n << 52n, (1n << 64n) - 64n * PAGE];
const DOMAINS = [7, 8] as const;
/** Endpoint 2 has a reserved region over the upper half of page 5 of the range. */
const REGION_PAGE = 5n;

const op = fc.oneof(
  {
    arbitrary: fc.record({
      kind: fc.constant('map' as const),
      domain: fc.constantFrom(...DOMAINS),
      first: fc.nat({ max: 511 }),
      units: fc.integer({ min: 1, max: 24 }),
      phys: fc.nat({ max: 0xfff }),
      flags: fc.constantFrom(
        MapFlag.READ,
        MapFlag.WRITE,
        MapFlag.READ | MapFlag.WRITE,
        MapFlag.READ | MapFlag.MMIO,
      ),
    }),
    weight: 6,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('unmap' as const),
      domain: fc.constantFrom(...DOMAINS),
      /** A range of units, or exactly one live mapping of the domain (picked by `first`). */
      exact: fc.boolean(),
      first: fc.nat({ max: 511 }),
      units: fc.integer({ min: 1, max: 40 }),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('attach' as const),
      endpoint: fc.constantFrom(1, 2),
      domain: fc.constantFrom(...DOMAINS),
    }),
    weight: 1,
  },
  {
    arbitrary: fc.record({ kind: fc.constant('detach' as const), endpoint: fc.constantFrom(1, 2) }),
    weight: 1,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('translate' as const),
      endpoint: fc.constantFrom(1, 2),
      /**
       * Where: anywhere in the tested range (64 pages), inside a live mapping of the endpoint's
       * domain, or again at an address translated before (which may since have changed).
       */
      where: fc.constantFrom('anywhere' as const, 'mapped' as const, 'again' as const),
      at: fc.nat({ max: 64 * 0x1000 - 1 }),
      write: fc.boolean(),
      pages: fc.integer({ min: 1, max: 40 }),
    }),
    weight: 6,
  },
  { arbitrary: fc.constant({ kind: 'reset' as const }), weight: 1 },
);

interface Expected {
  ok: boolean;
  pa?: bigint;
  length?: bigint;
  mmio?: boolean;
  reason?: number;
}

class ReferenceIommu {
  readonly domains = new Map<number, ReferenceMappings>();
  readonly attached = new Map<number, number>();

  constructor(private readonly region: { start: bigint; end: bigint }) {}

  private regionsOf(endpoint: number) {
    return endpoint === 2 ? [this.region] : [];
  }

  attach(endpoint: number, domain: number): number {
    if (this.attached.get(endpoint) === domain) return Status.OK;
    const existing = this.domains.get(domain);
    // virtio 1.2 §5.13.6.3.2: a domain whose mappings cover a reserved region of the endpoint.
    if (
      existing?.intervals.some((m) =>
        this.regionsOf(endpoint).some((r) => m.start <= r.end && r.start <= m.end),
      )
    )
      return Status.UNSUPP;
    this.detach(endpoint);
    if (existing === undefined) this.domains.set(domain, new ReferenceMappings());
    this.attached.set(endpoint, domain);
    return Status.OK;
  }

  detach(endpoint: number): void {
    const domain = this.attached.get(endpoint);
    if (domain === undefined) return;
    this.attached.delete(endpoint);
    if (![...this.attached.values()].includes(domain)) this.domains.delete(domain);
  }

  map(domain: number, start: bigint, end: bigint, phys: bigint, flags: number): number {
    const mappings = this.domains.get(domain);
    if (mappings === undefined) return Status.NOENT;
    if (mappings.intervals.some((m) => m.start <= end && start <= m.end)) return Status.INVAL;
    // virtio 1.2 §5.13.6.8.2.2: no MAP over a reserved region of an attached endpoint.
    for (const [endpoint, d] of this.attached) {
      if (d === domain && this.regionsOf(endpoint).some((r) => r.start <= end && start <= r.end))
        return Status.INVAL;
    }
    return mappings.map(start, end, phys, flags);
  }

  translate(endpoint: number, iova: bigint, write: boolean): Expected {
    const domain = this.attached.get(endpoint);
    if (domain === undefined) return { ok: false, reason: FaultReason.DOMAIN };
    if (this.regionsOf(endpoint).some((r) => r.start <= iova && iova <= r.end))
      return { ok: false, reason: FaultReason.MAPPING };
    const m = this.domains.get(domain)!.find(iova);
    if (m === undefined || (m.flags & (write ? MapFlag.WRITE : MapFlag.READ)) === 0)
      return { ok: false, reason: FaultReason.MAPPING };
    const left = m.end - iova + 1n;
    return {
      ok: true,
      pa: m.phys + (iova - m.start),
      length: left < 1n << 52n ? left : 1n << 52n,
      mmio: (m.flags & MapFlag.MMIO) !== 0,
    };
  }
}

describe('page cache against a reference model', () => {
  for (const unit of [0x1000n, 0x200n]) {
    it(`every translation answers what the mappings say now (${unit === PAGE ? '4 KiB' : '512-byte'} granule)`, async () => {
      const tally = { asked: 0, translated: 0 };
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...bases),
          fc.array(op, { minLength: 20, maxLength: 60 }),
          async (base, ops) => {
            const region = {
              start: base + REGION_PAGE * PAGE + 0x800n,
              end: base + REGION_PAGE * PAGE + 0xfffn,
            };
            const h = createVirtioIommuHarness({
              endpoints: [{ id: 1 }, { id: 2, reservedRegions: [{ ...region, subtype: 'reserved' }] }],
              bypass: false,
              pageSizeMask: U64_MAX & ~(unit - 1n),
            });
            const model = new ReferenceIommu(region);
            // Like a driver that (re)starts: endpoint 1 in domain 7, endpoint 2 in domain 8.
            const attachBoth = async () => {
              for (const [endpoint, domain] of [
                [1, 7],
                [2, 8],
              ] as const) {
                model.attach(endpoint, domain);
                expect(await requestStatus(h, encodeAttach({ domain, endpoint }))).toBe(Status.OK);
              }
            };
            await attachBoth();
            const asked: bigint[] = [];
            const pickAddress = (endpoint: number, where: string, at: number): bigint => {
              const live = model.domains.get(model.attached.get(endpoint) ?? -1)?.intervals ?? [];
              if (where === 'mapped' && live.length > 0) {
                const m = live[at % live.length]!;
                return m.start + (BigInt(at) % (m.end - m.start + 1n));
              }
              if (where === 'again' && asked.length > 0)
                return asked[asked.length - 1 - (at % Math.min(asked.length, 8))]!;
              return base + BigInt(at);
            };
            // MAP and UNMAP land in the 64 pages that translations probe.
            const unitsInRange = (64n * PAGE) / unit;
            const out = createPageTranslation();
            const pas = new Float64Array(40);
            const check = (endpoint: number, iova: bigint, write: boolean) => {
              const expected = model.translate(endpoint, iova, write);
              const access = write ? DmaAccess.WRITE : DmaAccess.READ;
              const lo = Number(iova & 0xffff_ffffn);
              const hi = Number(iova >> 32n);
              for (let round = 0; round < 2; round++) {
                const ok = h.device.translatePageHalves(endpoint, NO_PASID, lo, hi, access, out);
                expect(ok).toBe(expected.ok);
                tally.asked++;
                if (ok) tally.translated++;
                if (!ok) {
                  expect(out.reason).toBe(expected.reason);
                  continue;
                }
                expect(BigInt(out.paHi) * 2n ** 32n + BigInt(out.paLo)).toBe(expected.pa);
                expect(out.pa).toBe(Number(expected.pa));
                expect(BigInt(out.length)).toBe(expected.length);
                expect(out.mmio).toBe(expected.mmio);
              }
            };
            for (const o of ops) {
              if (o.kind === 'map') {
                const start = base + (BigInt(o.first) % unitsInRange) * unit;
                const end = start + BigInt(o.units) * unit - 1n;
                if (end > U64_MAX) continue;
                const phys = BigInt(o.phys) * unit;
                const request = encodeMap({
                  domain: o.domain,
                  virtStart: start,
                  virtEnd: end,
                  physStart: phys,
                  flags: o.flags,
                });
                expect(await requestStatus(h, request)).toBe(model.map(o.domain, start, end, phys, o.flags));
              } else if (o.kind === 'unmap') {
                const live = model.domains.get(o.domain)?.intervals ?? [];
                const target = o.exact && live.length > 0 ? live[o.first % live.length] : undefined;
                const start = target?.start ?? base + (BigInt(o.first) % unitsInRange) * unit;
                if (start > U64_MAX) continue;
                const last = target?.end ?? start + BigInt(o.units) * unit - 1n;
                const end = last > U64_MAX ? U64_MAX : last;
                const mappings = model.domains.get(o.domain);
                const expected = mappings === undefined ? Status.NOENT : mappings.unmap(start, end);
                const got = await requestStatus(
                  h,
                  encodeUnmap({ domain: o.domain, virtStart: start, virtEnd: end }),
                );
                // virtio 1.2 §5.13.6.6.2: UNMAP of a domain that does not exist is S_NOENT.
                expect(got).toBe(expected);
              } else if (o.kind === 'attach') {
                const expected = model.attach(o.endpoint, o.domain);
                expect(await requestStatus(h, encodeAttach({ domain: o.domain, endpoint: o.endpoint }))).toBe(
                  expected,
                );
              } else if (o.kind === 'detach') {
                const domain = model.attached.get(o.endpoint);
                if (domain === undefined) continue;
                model.detach(o.endpoint);
                expect(await requestStatus(h, encodeDetach({ domain, endpoint: o.endpoint }))).toBe(
                  Status.OK,
                );
              } else if (o.kind === 'reset') {
                h.restart();
                for (const endpoint of [...model.attached.keys()]) model.detach(endpoint);
                await attachBoth();
              } else {
                const iova = pickAddress(o.endpoint, o.where, o.at);
                if (iova > U64_MAX) continue;
                asked.push(iova);
                check(o.endpoint, iova, o.write);
                // A run of pages from the page holding `iova`: the leading pages that translate
                // whole (one mapping over all 4 KiB), and no fault reported for the one that stops it.
                const firstPage = Number(iova >> 12n);
                const count = Math.min(o.pages, Number((U64_MAX >> 12n) - BigInt(firstPage)) + 1);
                const raised = h.device.faultStats.raised;
                const access = o.write ? DmaAccess.WRITE : DmaAccess.READ;
                const got = h.device.translateIovaPages(o.endpoint, NO_PASID, firstPage, count, access, pas);
                let expected = 0;
                while (expected < count) {
                  const page = model.translate(
                    o.endpoint,
                    (iova & ~0xfffn) + BigInt(expected) * PAGE,
                    o.write,
                  );
                  if (!page.ok || page.length! < PAGE) break;
                  expect(pas[expected]).toBe(Number(page.pa));
                  expected++;
                }
                expect(got).toBe(expected);
                expect(h.device.faultStats.raised).toBe(raised);
              }
            }
          },
        ),
        { numRuns: 80 },
      );
      // The runs must translate through live mappings, or the cache was never tested.
      expect(tally.translated).toBeGreaterThan(tally.asked / 20);
    });
  }
});
