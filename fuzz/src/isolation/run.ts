/**
 * Runs a hostile scenario against the real stack and the reference model side by side; after
 * every step it checks the isolation property. Throws `IsolationViolation` with the step index
 * and what went wrong.
 */
import { crc32 } from 'node:zlib';
import { DmaAccess } from '@vmmkit/core';
import {
  encodeAttach,
  encodeAttachTable,
  encodeDetach,
  encodeInvalidate,
  encodeMap,
  encodeUnmap,
  FaultFlag,
  type FaultReport,
  statusName,
} from '@vmmkit/virtio-iommu';
import { DmaError, DmaOp, DmaReg, DmaStatus } from '@vmmkit/vmm';
import { NestedTableModel } from '../model/nested-model.js';
import {
  type ModelRegion,
  U64_MAX,
  UpstreamModel,
  type UpstreamModelConfig,
} from '../model/upstream-model.js';
import {
  canary,
  createWorld,
  DMA_PAGES,
  DMA_REGION,
  ENDPOINTS,
  type GuestTable,
  PAGE,
  RAM_BASE,
  RAM_SIZE,
  RESERVED_REGIONS,
  type World,
} from '../world.js';
import { type Action, NESTED_IOVA_PAGE, type Scenario } from './actions.js';

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
const PAGE_BIG = 4096n;
const ARM_PSTF = 2;
const ARM_PGTF = 1;

interface NestedEntry {
  guest: GuestTable;
  model: NestedTableModel;
}

/** Outcome counters of a run (what the fuzz CLI prints as distinct outcomes). */
export interface RunStats {
  statuses: Map<string, number>;
  dma: Map<string, number>;
}

function physOf(target: number): bigint {
  if (target === -1) return 0x1_0000_0000n; // beyond guest RAM
  if (target === -2) return 0x8000_0000n; // the reserved region
  if (target === -3) return U64_MAX - PAGE_BIG + 1n; // last page of the physical space
  return BigInt(DMA_REGION + target * PAGE);
}

const inRam = (pa: bigint, length: number) =>
  pa >= BigInt(RAM_BASE) && pa + BigInt(length) <= BigInt(RAM_BASE + RAM_SIZE);

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

  constructor(
    private readonly world: World,
    private readonly model: UpstreamModel,
    private readonly stats?: RunStats,
  ) {}

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
        this.dma(action);
        return;
      case 'translate':
        this.translate(action);
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

  /** The model's verdict for one page of an access. */
  private allowed(endpoint: number, pasid: number | undefined, page: bigint, write: boolean) {
    const access = this.model.access(endpoint, pasid, page * PAGE_BIG, write);
    switch (access.kind) {
      case 'identity':
        return { faultOk: false, pages: [page * PAGE_BIG] as bigint[] | null, reason: -1, exact: true };
      case 'mapped':
        return { faultOk: false, pages: [access.pa], reason: -1, exact: true };
      case 'fault':
        return { faultOk: true, pages: [] as bigint[], reason: access.reason, exact: true };
      case 'table': {
        const key = access.domain.tableKey!;
        if (this.corruptTaint.has(key)) return { faultOk: true, pages: null, reason: -1, exact: false };
        const entry = [...this.tables.values()].find((t) => t.guest.key === key)!;
        if (page >= 2n ** 36n) return { faultOk: true, pages: [], reason: -1, exact: false };
        const verdict = entry.model.allowed(pasid, Number(page), write);
        if (verdict.identity) return { faultOk: false, pages: [page * PAGE_BIG], reason: -1, exact: true };
        return {
          faultOk: verdict.faultOk,
          pages: verdict.pages === null ? null : [...verdict.pages].map(BigInt),
          reason: -1,
          exact: false,
        };
      }
    }
  }

  private expectReport(
    endpoint: number,
    pasid: number | undefined,
    address: bigint,
    write: boolean,
    reason: number,
    faultOk: boolean,
  ): void {
    const reports = this.world.harness.events();
    if (!faultOk) this.fail(`a fault at ${hex(address)} the model does not allow`);
    if (reports.length !== 1) this.fail(`${reports.length} fault reports for one fault`);
    const r = reports[0]!;
    const wantFlags = (write ? FaultFlag.WRITE : FaultFlag.READ) | FaultFlag.ADDRESS;
    if (r.endpoint !== endpoint) this.fail(`fault report names endpoint ${r.endpoint}, not ${endpoint}`);
    if ((r.flags & wantFlags) !== wantFlags)
      this.fail(`fault report flags ${hex(BigInt(r.flags))} lack ${hex(BigInt(wantFlags))}`);
    if (r.address !== address && r.address !== (address & ~0xfffn)) {
      this.fail(
        `fault report address ${r.address === undefined ? 'absent' : hex(r.address)}, fault at ${hex(address)}`,
      );
    }
    if (reason >= 0 && r.reason !== reason)
      this.fail(`fault reason ${r.reason}, the spec requires ${reason}`);
    const pasidFlag = (r.flags & FaultFlag.PASID) !== 0;
    if (pasid !== undefined && (!pasidFlag || r.pasid !== pasid))
      this.fail(`fault report lost PASID ${pasid}: ${JSON.stringify(reportJson(r))}`);
  }

  private dma(action: Extract<Action, { kind: 'dma' }>): void {
    const engine = this.world.engines.get(action.endpoint)!;
    const write = action.op === 'fill';
    const start = action.page * PAGE_BIG + BigInt(action.offset);
    this.world.fillCanaries();
    const w = (reg: number, v: number) => engine.write(reg, 4, v);
    const target = write ? DmaReg.DST_LO : DmaReg.SRC_LO;
    w(target, Number(start & 0xffff_ffffn));
    w(target + 4, Number(start >> 32n));
    w(DmaReg.LENGTH, action.length);
    w(DmaReg.PASID, action.pasid === undefined ? 0 : 0x8000_0000 | action.pasid);
    w(DmaReg.OP, write ? DmaOp.FILL : DmaOp.CRC32);
    w(DmaReg.FILL, action.value);
    w(DmaReg.DOORBELL, 1);
    const status = engine.read(DmaReg.STATUS, 4);
    const error = engine.read(DmaReg.ERROR, 4);
    const done = engine.read(DmaReg.BYTES_DONE, 4);
    const outcome = `${action.op} ${status === DmaStatus.DONE ? 'done' : `error ${error}`}`;
    this.stats?.dma.set(outcome, (this.stats.dma.get(outcome) ?? 0) + 1);
    const end = start + BigInt(action.length) - 1n;
    if (end > U64_MAX) {
      if (error !== DmaError.RANGE) this.fail(`a DMA past 2^64 ended with error ${error}, not RANGE`);
      return;
    }
    const region = this.world.region();
    const explained = new Uint8Array(region.length);
    let exactCrcInput: Uint8Array[] | null = [];
    // Walk the pages the engine went through, in order.
    let at = start;
    let moved = 0;
    while (at <= end) {
      const page = at / PAGE_BIG;
      const chunk = Number(
        (page + 1n) * PAGE_BIG - at < end - at + 1n ? (page + 1n) * PAGE_BIG - at : end - at + 1n,
      );
      const verdict = this.allowed(action.endpoint, action.pasid, page, write);
      if (moved >= done) {
        // The engine stopped on this page: a fault, or the target is not RAM.
        if (error === DmaError.TRANSLATION) {
          this.expectReport(
            action.endpoint,
            action.pasid,
            at,
            write,
            verdict.exact ? verdict.reason : -1,
            verdict.faultOk,
          );
          this.checkUnexplained(region, explained, write);
          return;
        }
        if (error === DmaError.BUS) {
          const offRam =
            verdict.pages === null || verdict.pages.some((pa) => !inRam(pa + (at % PAGE_BIG), chunk));
          if (!offRam) this.fail(`BUS error at ${hex(at)} though every allowed target is RAM`);
          this.checkUnexplained(region, explained, write);
          return;
        }
        this.fail(`stopped after ${done} of ${action.length} bytes with error ${error}`);
      }
      if (verdict.pages !== null && verdict.pages.length === 0)
        this.fail(`DMA reached ${hex(at)}, which the model does not allow`);
      // Which allowed target holds the bytes (for a write)? For a read the exact model pins it.
      const offset = Number(at % PAGE_BIG);
      if (write) {
        const found = this.findWritten(region, verdict.pages, offset, chunk, action.value, explained);
        if (!found)
          this.fail(
            `the ${chunk} bytes written at ${hex(at)} are at none of the allowed targets ${fmtPages(verdict.pages)}`,
          );
      } else if (
        verdict.exact &&
        verdict.pages !== null &&
        verdict.pages.length === 1 &&
        exactCrcInput !== null
      ) {
        const pa = verdict.pages[0]! + BigInt(offset);
        if (!inRam(pa, chunk)) this.fail(`read of ${hex(at)} succeeded though ${hex(pa)} is not RAM`);
        exactCrcInput.push(this.world.memory.read(Number(pa), chunk));
      } else exactCrcInput = null;
      moved += chunk;
      at += BigInt(chunk);
    }
    if (error !== DmaError.NONE)
      this.fail(`a DMA the model allows whole ended with error ${error} after ${done} bytes`);
    if (!write && exactCrcInput !== null) {
      const want = crc32(Buffer.concat(exactCrcInput)) >>> 0;
      const got = engine.read(DmaReg.RESULT, 4) >>> 0;
      if (want !== got)
        this.fail(`CRC ${hex(BigInt(got))} of the DMA read differs from the model's ${hex(BigInt(want))}`);
    }
    this.checkUnexplained(region, explained, write);
  }

  /** Finds the written bytes at one of the allowed pages; marks them explained. */
  private findWritten(
    region: Uint8Array,
    pages: bigint[] | null,
    offset: number,
    chunk: number,
    value: number,
    explained: Uint8Array,
  ): boolean {
    const candidates = pages ?? Array.from({ length: DMA_PAGES }, (_, i) => BigInt(DMA_REGION + i * PAGE));
    const holds = (base: number) => {
      for (let i = 0; i < chunk; i++) if (region[base + i] !== value) return false;
      return true;
    };
    const fresh = (base: number) => explained.subarray(base, base + chunk).includes(0);
    const inRegion: number[] = [];
    let elsewhereInRam = false;
    for (const pa of candidates) {
      const first = pa + BigInt(offset);
      if (!inRam(first, chunk)) continue;
      const base = Number(first) - DMA_REGION;
      if (base < 0 || base + chunk > region.length) elsewhereInRam = true;
      else if (holds(base)) inRegion.push(base);
    }
    // Prefer a target this DMA has not written yet; two IOVA pages may also alias one page.
    const base = inRegion.find(fresh) ?? inRegion[0];
    if (base !== undefined) {
      explained.fill(1, base, base + chunk);
      return true;
    }
    // RAM outside the canary region: no canaries there, and the model allowed it.
    return elsewhereInRam || pages === null;
  }

  private checkUnexplained(region: Uint8Array, explained: Uint8Array, write: boolean): void {
    for (let i = 0; i < region.length; i++) {
      if (explained[i] === 0 && region[i] !== canary(DMA_REGION + i)) {
        this.fail(
          `byte at ${hex(BigInt(DMA_REGION + i))} changed by a ${write ? 'write' : 'read'} DMA the model does not allow there`,
        );
      }
    }
  }

  private translate(action: Extract<Action, { kind: 'translate' }>): void {
    const start = action.page * PAGE_BIG + BigInt(action.offset);
    if (start + BigInt(action.length) - 1n > U64_MAX) return;
    const result = this.world.device.translate({
      endpoint: action.endpoint,
      pasid: action.pasid,
      iova: start,
      length: action.length,
      access: action.write ? DmaAccess.WRITE : DmaAccess.READ,
    });
    const outcome = `translate ${result.ok ? 'ok' : `fault ${result.fault.reason}`}`;
    this.stats?.dma.set(outcome, (this.stats.dma.get(outcome) ?? 0) + 1);
    let covered = start;
    const segments = result.ok ? result.segments : [];
    for (const s of segments) {
      if (s.iova !== covered) this.fail(`segments skip from ${hex(covered)} to ${hex(s.iova)}`);
      for (let at = s.iova; at < s.iova + BigInt(s.length); at = (at / PAGE_BIG + 1n) * PAGE_BIG) {
        const verdict = this.allowed(action.endpoint, action.pasid, at / PAGE_BIG, action.write);
        const pa = s.address + (at - s.iova);
        const pagePa = pa - (at % PAGE_BIG);
        // A tainted table may name any guest-physical page (a DMA engine then finds no RAM there).
        if (verdict.pages !== null && !verdict.pages.includes(pagePa)) {
          this.fail(`${hex(at)} translated to ${hex(pa)}; the model allows ${fmtPages(verdict.pages)}`);
        }
      }
      covered = s.iova + BigInt(s.length);
    }
    if (!result.ok) {
      // A failed DMA reports only its first faulting address: every page before it translated.
      const f = result.fault;
      const last = start + BigInt(action.length) - 1n;
      if (f.address < start || f.address > last) this.fail(`fault at ${hex(f.address)} outside the DMA`);
      for (let page = start / PAGE_BIG; page < f.address / PAGE_BIG; page++) {
        const before = this.allowed(action.endpoint, action.pasid, page, action.write);
        if (before.pages !== null && before.pages.length === 0)
          this.fail(`page ${hex(page * PAGE_BIG)} before the fault is not allowed`);
      }
      const verdict = this.allowed(action.endpoint, action.pasid, f.address / PAGE_BIG, action.write);
      this.expectReport(
        action.endpoint,
        action.pasid,
        f.address,
        action.write,
        verdict.exact ? verdict.reason : -1,
        verdict.faultOk,
      );
    } else if (covered !== start + BigInt(action.length)) {
      this.fail(`segments cover ${covered - start} of ${action.length} bytes`);
    }
  }
}

const hex = (v: bigint | number) => `0x${v.toString(16)}`;
const fmtPages = (pages: bigint[] | null) =>
  pages === null ? 'any RAM page' : `[${pages.map(hex).join(', ')}]`;
const reportJson = (r: FaultReport) => ({ ...r, address: r.address === undefined ? null : hex(r.address) });
