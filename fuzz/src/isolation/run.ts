import {
  encodeAttach,
  encodeAttachTable,
  encodeDetach,
  encodeInvalidate,
  encodeMap,
  encodeUnmap,
  statusName,
} from '@vmmkit/virtio-iommu';
import { NestedTableModel } from '../model/nested-model.js';
import {
  type ModelRegion,
  U64_MAX,
  UpstreamModel,
  type UpstreamModelConfig,
} from '../model/upstream-model.js';
import { createWorld, DMA_REGION, ENDPOINTS, PAGE, RESERVED_REGIONS, type World } from '../world.js';
import { type Action, NESTED_IOVA_PAGE, type Scenario } from './actions.js';
import { DmaChecks, type NestedEntry, PAGE_BIG, type RunStats, reportJson } from './dma-check.js';

export type { RunStats };

export class IsolationViolation extends Error {
  constructor(
    readonly step: number,
    readonly action: Action | null,
    message: string,
  ) {
    super(`step ${step} (${action === null ? 'setup' : action.kind}): ${message}`);
  }
}

const TABLE_DOMAIN_BASE = 20;
const ARM_PSTF = 2;
const ARM_PGTF = 1;

function physOf(target: number): bigint {
  if (target === -1) return 0x1_0000_0000n; // beyond guest RAM
  if (target === -2) return 0x8000_0000n; // the reserved region
  if (target === -3) return U64_MAX - PAGE_BIG + 1n; // last page of the physical space
  return BigInt(DMA_REGION + target * PAGE);
}

/**
 * Runs `scenario`; `modelOverrides` lets a test lie to the model (e.g. about `bypass`) to prove
 * the checks catch a device that diverges from it.
 */
export function runScenario(
  scenario: Scenario,
  stats?: RunStats,
  modelOverrides: Partial<UpstreamModelConfig> = {},
): void {
  const world = createWorld({ bypass: scenario.bypass, narrowInput: scenario.narrowInput });
  const regions = new Map<number, readonly ModelRegion[]>(
    ENDPOINTS.map((e) => [e, e === 3 ? RESERVED_REGIONS : []]),
  );
  const model = new UpstreamModel({
    endpoints: regions,
    granule: PAGE_BIG,
    inputStart: scenario.narrowInput ? 0x1000n : 0n,
    inputEnd: scenario.narrowInput ? (1n << 48n) - 1n : U64_MAX,
    domainStart: 1,
    domainEnd: 32,
    maxDomains: 6,
    maxMappingsPerDomain: 24,
    bypass: scenario.bypass,
    tableFormats: new Map(ENDPOINTS.map((e) => [e, [ARM_PGTF, ARM_PSTF]])),
    ...modelOverrides,
  });
  const runner = new ScenarioRunner(world, model, stats);
  scenario.actions.forEach((action, step) => {
    try {
      runner.step(action, step);
    } catch (error) {
      if (error instanceof IsolationViolation) throw error;
      throw new IsolationViolation(
        step,
        action,
        `the host threw: ${(error as Error).stack ?? String(error)}`,
      );
    }
    runner.checkQuiet(step, action);
  });
}

class ScenarioRunner {
  private readonly tables = new Map<number, NestedEntry>();
  /** Nested models by the tableKey of a live upstream domain. */
  private readonly corruptTaint = new Set<string>();
  private index = 0;
  private action: Action | null = null;

  private readonly checks: DmaChecks;

  constructor(
    private readonly world: World,
    private readonly model: UpstreamModel,
    private readonly stats?: RunStats,
  ) {
    this.checks = new DmaChecks({
      world,
      model,
      stats,
      tables: this.tables,
      corruptTaint: this.corruptTaint,
      fail: (message) => this.fail(message),
    });
  }

  private fail(message: string): never {
    throw new IsolationViolation(this.index, this.action, message);
  }

  /** After each step: no report left unexplained, none dropped. */
  checkQuiet(step: number, action: Action): void {
    this.index = step;
    this.action = action;
    const extra = this.world.harness.events();
    if (extra.length > 0) this.fail(`unexpected fault reports: ${JSON.stringify(extra.map(reportJson))}`);
    if (this.world.device.faultStats.dropped !== 0)
      this.fail('a fault report was dropped with buffers posted');
  }

  private submit(request: Uint8Array, allowed: readonly number[]): number {
    const status = this.world.harness.submitBatch([request], 4)[0]!;
    const name = status === 0xff ? 'used length 0' : statusName(status);
    if (this.stats)
      this.stats.statuses.set(
        `${this.action?.kind} ${name}`,
        (this.stats.statuses.get(`${this.action?.kind} ${name}`) ?? 0) + 1,
      );
    if (!allowed.includes(status)) {
      this.fail(`status ${name}, the spec requires ${allowed.map(statusName).join(' or ')}`);
    }
    return status;
  }

  step(action: Action, index: number): void {
    this.action = action;
    this.index = index;
    switch (action.kind) {
      case 'attach': {
        const { domain, endpoint, flags, reserved } = action;
        const status = this.submit(
          encodeAttach({ domain, endpoint, flags, reserved }),
          this.model.expectAttach(domain, endpoint, flags, reserved),
        );
        this.model.applyAttach(domain, endpoint, flags, status);
        return;
      }
      case 'detach': {
        const status = this.submit(
          encodeDetach(action),
          this.model.expectDetach(action.domain, action.endpoint),
        );
        this.model.applyDetach(action.domain, action.endpoint, status);
        return;
      }
      case 'map': {
        const start = action.page * PAGE_BIG + action.startOff;
        // Fields are le64 on the wire: the guest's arithmetic wraps.
        const end = ((action.page + action.pages) * PAGE_BIG - 1n - action.endOff) & U64_MAX;
        const phys = physOf(action.phys);
        const status = this.submit(
          encodeMap({
            domain: action.domain,
            virtStart: start,
            virtEnd: end,
            physStart: phys,
            flags: action.flags,
          }),
          this.model.expectMap(action.domain, start, end, phys, action.flags),
        );
        this.model.applyMap(action.domain, start, end, phys, action.flags, status);
        return;
      }
      case 'unmap': {
        const start = action.page * PAGE_BIG;
        const end = ((action.page + action.pages) * PAGE_BIG - 1n) & U64_MAX;
        const status = this.submit(
          encodeUnmap({ domain: action.domain, virtStart: start, virtEnd: end, reserved: action.reserved }),
          this.model.expectUnmap(action.domain, start, end, action.reserved),
        );
        this.model.applyUnmap(action.domain, start, end, status);
        return;
      }
      case 'attach-table':
        this.attachTable(action.table, action.endpoint, action.s1dss);
        return;
      case 'attach-corrupt': {
        const { domain, endpoint, format, flags, payload } = action;
        const key = `corrupt:${Buffer.from(payload).toString('hex')}:${format}`;
        const request = encodeAttachTable({ domain, endpoint, flags, format, payload });
        const formatOffered = format === ARM_PGTF || format === ARM_PSTF;
        const allowed = this.model.expectAttachTable(
          domain,
          endpoint,
          flags,
          formatOffered ? format : -1,
          key,
          false,
        );
        const status = this.submit(request, allowed);
        const d = this.model.applyAttachTable(domain, endpoint, key, status);
        if (d !== null) this.corruptTaint.add(key);
        return;
      }
      case 'add-pasid': {
        const entry = this.tables.get(action.table);
        if (entry === undefined || entry.guest.ops.has(action.pasid)) return;
        if (entry.model.s1dss === 2 && action.pasid === 0) return; // the library refuses CD 0 then? it is the default substream
        const asid = this.world.addPasid(entry.guest, action.pasid);
        entry.model.addPasid(action.pasid, asid, false);
        if (action.invalidate) this.invalidatePasid(entry, action.pasid, asid);
        return;
      }
      case 'remove-pasid': {
        const entry = this.tables.get(action.table);
        const ctx = entry?.guest.ops.get(action.pasid);
        if (entry === undefined || ctx === undefined) return;
        this.world.removePasid(entry.guest, action.pasid);
        entry.model.removePasid(action.pasid, false);
        if (action.invalidate) this.invalidatePasid(entry, action.pasid, ctx.asid);
        return;
      }
      case 'pte':
        this.rewritePte(action);
        return;
      case 'corrupt-table': {
        const entry = this.tables.get(action.table);
        if (entry === undefined) return;
        const pages = [...entry.guest.pages];
        const page = pages[action.pick % pages.length]!;
        const at = page + ((action.pick >>> 3) % (PAGE - action.bytes.length));
        this.world.memory.write(at, action.bytes);
        entry.model.tainted = true;
        return;
      }
      case 'invalidate-raw': {
        const request = encodeInvalidate({
          domain: action.domain,
          granularity: action.granularity,
          caches: action.caches,
          flags: action.flags,
          pasid: action.pasid,
          archid: action.archid,
          virtStart: BigInt(action.page) * PAGE_BIG,
          nrPages: BigInt(action.nrPages),
          granule: action.granule,
        });
        const wellFormed =
          [1, 2, 4].includes(action.granularity) &&
          (action.caches & ~7) === 0 &&
          (action.flags & ~7) === 0 &&
          (action.granularity !== 4 || action.granule <= 63);
        // A raw invalidation may clear caches, never adds translations: the model keeps its (conservative) state.
        this.submit(request, this.model.expectInvalidate(action.domain, wellFormed));
        return;
      }
      case 'bypass': {
        // virtio 1.2 §5.13.4: the driver may write `bypass` (F_BYPASS_CONFIG negotiated); bit 0 counts.
        const { mmio, base } = this.world.harness.guest;
        mmio.write8(base + 0x100 + 36, action.value);
        this.model.config.bypass = (action.value & 1) === 1;
        return;
      }
      case 'dma':
        this.checks.dma(action);
        return;
      case 'translate':
        this.checks.translate(action);
        return;
    }
  }

  private tableFor(index: number, s1dss: 0 | 1 | 2): NestedEntry {
    let entry = this.tables.get(index);
    if (entry === undefined) {
      const guest = this.world.newGuestTable(TABLE_DOMAIN_BASE + index, s1dss);
      entry = { guest, model: new NestedTableModel(s1dss, 2 ** 4) };
      this.tables.set(index, entry);
    }
    return entry;
  }

  private attachTable(index: number, endpoint: number, s1dss: 0 | 1 | 2): void {
    const entry = this.tableFor(index, s1dss);
    const domain = entry.guest.domain;
    const request = encodeAttachTable({ domain, endpoint, format: ARM_PSTF, payload: entry.guest.payload });
    const allowed = this.model.expectAttachTable(domain, endpoint, 0, ARM_PSTF, entry.guest.key, true);
    const status = this.submit(request, allowed);
    this.model.applyAttachTable(domain, endpoint, entry.guest.key, status);
  }

  private invalidate(domain: number, fields: Parameters<typeof encodeInvalidate>[0]): void {
    const allowed = this.model.expectInvalidate(domain, true);
    this.submit(encodeInvalidate(fields), allowed);
  }

  private invalidatePasid(entry: NestedEntry, pasid: number, asid: number): void {
    const domain = entry.guest.domain;
    this.invalidate(domain, { domain, granularity: 2, caches: 0b101, flags: 0b011, pasid, archid: asid });
    // Only an invalidation the device accepted can be relied upon.
    if (this.model.domains.get(domain)?.tableKey === entry.guest.key)
      entry.model.invalidatePasid(pasid, asid);
  }

  private rewritePte(action: Extract<Action, { kind: 'pte' }>): void {
    const entry = this.tables.get(action.table);
    const ctx = entry?.guest.ops.get(action.pasid);
    if (entry === undefined || ctx === undefined) return;
    const iova = (NESTED_IOVA_PAGE + action.page) * PAGE;
    const page = NESTED_IOVA_PAGE + action.page;
    ctx.ops.unmap(iova, PAGE);
    if (action.target !== null) {
      // IommuProt: READ 1, WRITE 2.
      ctx.ops.map(iova, DMA_REGION + action.target * PAGE, PAGE, action.write ? 3 : 1);
    }
    entry.model.setPage(
      action.pasid,
      page,
      action.target === null
        ? null
        : { pa: DMA_REGION + action.target * PAGE, read: true, write: action.write },
    );
    const domain = entry.guest.domain;
    const live = this.model.domains.get(domain)?.tableKey === entry.guest.key;
    switch (action.invalidate) {
      case 'none':
        return;
      case 'va':
        this.invalidate(domain, {
          domain,
          granularity: 4,
          caches: 0b001,
          flags: 0b111,
          pasid: action.pasid,
          archid: ctx.asid,
          virtStart: BigInt(iova),
          nrPages: 1n,
          granule: 12,
        });
        if (live) entry.model.invalidatePages(ctx.asid, page, page);
        return;
      case 'pasid':
        this.invalidatePasid(entry, action.pasid, ctx.asid);
        return;
      case 'domain':
        this.invalidate(domain, { domain, granularity: 1, caches: 0b101, flags: 0 });
        if (live) entry.model.invalidateAll();
        return;
    }
  }
}
