/**
 * The isolation checks of one DMA (through a DMA engine) or one range translation: every byte
 * moved, every fault and every report is compared with what the reference model allows (see
 * fuzz/README.md). Split from run.ts, which drives the scenario and owns the state read here.
 */
import { crc32 } from 'node:zlib';
import { DmaAccess } from '@vmmkit/core';
import { FaultFlag, type FaultReport } from '@vmmkit/virtio-iommu';
import { DmaError, DmaOp, DmaReg, DmaStatus } from '@vmmkit/vmm';
import type { NestedTableModel } from '../model/nested-model.js';
import { U64_MAX, type UpstreamModel } from '../model/upstream-model.js';
import {
  canary,
  DMA_PAGES,
  DMA_REGION,
  type GuestTable,
  PAGE,
  RAM_BASE,
  RAM_SIZE,
  type World,
} from '../world.js';
import type { Action } from './actions.js';

export const PAGE_BIG = 4096n;

/** A guest PASID/page table and the model of what it allows. */
export interface NestedEntry {
  guest: GuestTable;
  model: NestedTableModel;
}

/** Outcome counters of a run (what the fuzz CLI prints as distinct outcomes). */
export interface RunStats {
  statuses: Map<string, number>;
  dma: Map<string, number>;
}

/** What the checks read from the scenario runner: its world, models and state, and how to fail. */
export interface CheckContext {
  world: World;
  model: UpstreamModel;
  stats: RunStats | undefined;
  tables: ReadonlyMap<number, NestedEntry>;
  /** tableKeys of tables whose bytes the guest corrupted: any page or fault is allowed. */
  corruptTaint: ReadonlySet<string>;
  fail(message: string): never;
}

export const inRam = (pa: bigint, length: number) =>
  pa >= BigInt(RAM_BASE) && pa + BigInt(length) <= BigInt(RAM_BASE + RAM_SIZE);

export class DmaChecks {
  private readonly world: World;
  private readonly model: UpstreamModel;
  private readonly stats: RunStats | undefined;
  private readonly tables: ReadonlyMap<number, NestedEntry>;
  private readonly corruptTaint: ReadonlySet<string>;
  private readonly fail: (message: string) => never;

  constructor(ctx: CheckContext) {
    this.world = ctx.world;
    this.model = ctx.model;
    this.stats = ctx.stats;
    this.tables = ctx.tables;
    this.corruptTaint = ctx.corruptTaint;
    this.fail = (message) => ctx.fail(message);
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

  dma(action: Extract<Action, { kind: 'dma' }>): void {
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

  translate(action: Extract<Action, { kind: 'translate' }>): void {
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

export const hex = (v: bigint | number) => `0x${v.toString(16)}`;
const fmtPages = (pages: bigint[] | null) =>
  pages === null ? 'any RAM page' : `[${pages.map(hex).join(', ')}]`;
export const reportJson = (r: FaultReport) => ({
  ...r,
  address: r.address === undefined ? null : hex(r.address),
});
