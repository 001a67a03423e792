/**
 * The SMMUv3 translation model (host side): stream configuration → CD → stage-1 walk, with an
 * STE cache, a CD cache and an IOTLB that only CMDQ commands invalidate.
 *
 * This SMMU implements stage 1 only (IDR0.S1P=1, S2P=0), AArch64 little-endian tables, the
 * terminate fault model (no stall), no HTTU, no ATS, NS-EL1 StreamWorld, one VMID (the VMID of
 * TLBI commands is not compared). Guest memory is untrusted: every failure is an event.
 */
import { ErrorCode, type GuestMemory, hex, type TranslationStep, VmmError } from '@vmmkit/core';
import { decodeCommand } from '../codec/command.js';
import { EventType } from '../codec/event.js';
import { accessCodeOf, permBits, wordsOf } from './args.js';
import { executeCommand } from './commands.js';
import { checkRequest, checkSid, parseOptions, streamTableOf } from './config.js';
import { BYPASS_CONTEXT, type S1Context, type SmmuParams } from './context.js';
import { Iotlb } from './iotlb.js';
import { ContextResolver } from './resolver.js';
import { resultStep } from './result-step.js';
import { TranslationFaults } from './translation-faults.js';
import {
  type CommandResult,
  createStats,
  createTranslationOut,
  type Smmuv3Features,
  type Smmuv3Options,
  type Smmuv3Stats,
  type StreamTableConfig,
  type TranslateRequest,
  type TranslateResult,
  type TranslationOut,
} from './types.js';
import { POW2, WalkResult, walkStage1 } from './walk.js';

const PAGE = 4096;

export class Smmuv3 {
  readonly memory: GuestMemory;
  readonly oas: number;
  readonly ssidBits: number;
  readonly features: Readonly<Smmuv3Features>;
  private readonly counters: Smmuv3Stats = createStats();
  // Counters of the fast path, folded into `stats` when read (one field increment each).
  private fastHits = 0;
  private fastMisses = 0;
  private fastWalks = 0;
  // The IOTLB's arrays, held directly so the fast path loads them from `this`.
  private readonly tlbOn: boolean;
  private readonly tlbMask: number;
  private readonly tlbVpn: Float64Array;
  private readonly tlbAsid: Int32Array;
  private readonly tlbPa: Float64Array;
  private readonly tlbPerm: Uint8Array;
  private readonly tlbLevel: Int8Array;
  private readonly tlbPageSize: Float64Array;
  /** null when the IOTLB is disabled (`features.iotlbEntries: 0`). */
  private readonly iotlb: Iotlb | null;
  private readonly resolver: ContextResolver;
  private readonly faults: TranslationFaults;
  private readonly walkResult = new WalkResult();
  private readonly scratchOut = createTranslationOut();
  // One-entry memo of the last (sid, ssid) → context lookup; cleared by every CFGI.
  private lastSid = -1;
  private lastSsid = -2;
  private lastContext: S1Context | null = null;

  constructor(options: Smmuv3Options) {
    const { oas, ssidBits, features } = parseOptions(options);
    const entries = features.iotlbEntries;
    this.memory = options.memory;
    this.oas = oas;
    this.ssidBits = ssidBits;
    this.features = Object.freeze(features);
    this.iotlb = entries > 0 ? new Iotlb(entries) : null;
    const tlb = this.iotlb ?? new Iotlb(1);
    this.tlbOn = this.iotlb !== null;
    this.tlbMask = tlb.mask;
    this.tlbVpn = tlb.vpn;
    this.tlbAsid = tlb.asid;
    this.tlbPa = tlb.pa;
    this.tlbPerm = tlb.perm;
    this.tlbLevel = tlb.level;
    this.tlbPageSize = tlb.pageSize;
    const params: SmmuParams = {
      oas,
      ssidBits,
      asid16: features.asid16,
      twoLevelCd: features.twoLevelCdTables,
      granule4k: features.granule4k,
      granule16k: features.granule16k,
      granule64k: features.granule64k,
    };
    this.resolver = new ContextResolver(this.memory, params, this.counters);
    this.faults = new TranslationFaults(this.counters, this.resolver, this.walkResult);
  }

  /** Live IOTLB entries (0 with the IOTLB disabled), for tests and diagnostics. */
  get iotlbEntries(): number {
    return this.iotlb?.count() ?? 0;
  }

  /** Walks, IOTLB and CD/STE cache hits and misses, faults and commands since creation. */
  get stats(): Smmuv3Stats {
    const c = this.counters;
    c.iotlbHits += this.fastHits;
    c.iotlbMisses += this.fastMisses;
    c.walks += this.fastWalks;
    // Every translation past context resolution either hit the IOTLB or walked.
    c.translations += this.fastHits + this.fastWalks;
    this.fastHits = 0;
    this.fastMisses = 0;
    this.fastWalks = 0;
    return c;
  }

  /**
   * Programs STRTAB_BASE / STRTAB_BASE_CFG. STEs are then fetched from guest memory; cached
   * configuration is dropped (as the CFGI_ALL that follows such a change on hardware).
   */
  setStreamTable(config: StreamTableConfig): void {
    this.resolver.streamTable = streamTableOf(config, this.features, this.oas);
    // Reprogramming STRTAB_BASE is done with the SMMU disabled and followed by CFGI_ALL.
    this.resolver.invalidateAll();
    this.invalidateConfig();
  }

  /**
   * Gives `sid` an STE the host built (64 bytes), used instead of the stream table. With
   * `options.cd` (64 bytes) the stream's single CD (S1CDMax = 0) is held by the host too and
   * S1ContextPtr is not read (virtio-iommu format 1 hands over TCR/TTBR/MAIR, not a CD). The
   * host writing an STE implies its CFGI_STE: the stream's cached configuration is dropped.
   */
  setStreamConfig(sid: number, steBytes: Uint8Array, options: { cd?: Uint8Array } = {}): void {
    checkSid(sid, this.features.sidBits);
    const ste = wordsOf(steBytes, 'setStreamConfig needs a 64-byte STE (see encodeSte)');
    const cd =
      options.cd === undefined
        ? undefined
        : wordsOf(options.cd, 'options.cd must be a 64-byte CD (see encodeCd)');
    this.resolver.hostStes.set(sid, ste);
    if (cd === undefined) this.resolver.hostCds.delete(sid);
    else this.resolver.hostCds.set(sid, cd);
    this.resolver.invalidateStreams(sid, sid);
    this.invalidateConfig();
  }

  /** Removes a host-built STE; the stream table (if any) serves `sid` again. */
  clearStreamConfig(sid: number): void {
    this.resolver.hostStes.delete(sid);
    this.resolver.hostCds.delete(sid);
    this.resolver.invalidateStreams(sid, sid);
    this.invalidateConfig();
  }

  /** Translates one transaction. */
  translate(request: TranslateRequest): TranslateResult {
    checkRequest(request, this.features.sidBits);
    const privileged = request.privileged === true;
    const code = accessCodeOf(request.access, privileged);
    const out = this.scratchOut;
    if (this.translateInto(request.sid, request.ssid ?? -1, request.iova, code, out)) {
      return {
        ok: true,
        pa: out.pa,
        perm: { read: (out.perm & 1) !== 0, write: (out.perm & 2) !== 0, exec: (out.perm & 4) !== 0 },
        level: out.level,
        pageSize: out.pageSize,
      };
    }
    return { ok: false, event: out.event!, recorded: out.recorded };
  }

  /**
   * The allocation-free translation: `ssid` −1 = no SubstreamID; `accessCode` from `AccessCode`
   * (read 0, write 1, exec 2, +3 privileged). Returns true and fills `out`, or false with
   * `out.event` set. Arguments are trusted to be integers (use `translate` for checked input).
   */
  translateInto(sid: number, ssid: number, iova: number, accessCode: number, out: TranslationOut): boolean {
    // Fast path, kept small so callers can inline it: same stream as last time, stage 1
    // translating, IOTLB hit that grants the access.
    const ctx = this.lastContext;
    if (ctx !== null && sid === this.lastSid && ssid === this.lastSsid && ctx.kind === 0 && this.tlbOn) {
      const vpn = Math.floor(iova / PAGE);
      const s = (vpn ^ ctx.tlbHash) & this.tlbMask;
      if (this.tlbVpn[s] === vpn && this.tlbAsid[s] === ctx.asid) {
        const perm6 = this.tlbPerm[s]!;
        const code = ctx.accessMap === null ? accessCode : ctx.accessMap[accessCode]!;
        if (((perm6 >>> code) & 1) !== 0) {
          this.fastHits++;
          out.pa = this.tlbPa[s]! + (iova - vpn * PAGE);
          out.perm = code >= 3 ? (perm6 >>> 3) & 7 : perm6 & 7;
          out.level = this.tlbLevel[s]!;
          out.pageSize = this.tlbPageSize[s]!;
          out.event = null;
          return true;
        }
      }
    }
    return this.translateMiss(sid, ssid, iova, accessCode, out);
  }

  /** Everything but an IOTLB hit of the last stream: a cached permission fault, or a walk. */
  private translateMiss(
    sid: number,
    ssid: number,
    iova: number,
    accessCode: number,
    out: TranslationOut,
  ): boolean {
    const ctx = this.lastContext;
    if (ctx === null || sid !== this.lastSid || ssid !== this.lastSsid || ctx.kind !== 0) {
      return this.translateOther(sid, ssid, iova, accessCode, out);
    }
    // STE.PRIVCFG / INSTCFG overrides (IHI 0070 §5.2), resolved into the context.
    const code = ctx.accessMap === null ? accessCode : ctx.accessMap[accessCode]!;
    if (this.tlbOn) {
      const vpn = Math.floor(iova / PAGE);
      const s = (vpn ^ ctx.tlbHash) & this.tlbMask;
      if (this.tlbVpn[s] === vpn && this.tlbAsid[s] === ctx.asid) {
        // A cached leaf without the permission: a permission fault, as on a hit in hardware.
        this.fastHits++;
        if (((this.tlbPerm[s]! >>> code) & 1) === 0) {
          return this.faults.translation(EventType.F_PERMISSION, ctx, sid, ssid, iova, code, out);
        }
        // Granted after all (another stream refilled the memo): take the fast path.
        return this.translateInto(sid, ssid, iova, accessCode, out);
      }
      this.fastMisses++;
    }
    this.fastWalks++;
    const r = this.walkResult;
    const fault = walkStage1(this.memory, ctx, iova, code, r, null);
    if (this.tlbOn && (fault === 0 || fault === EventType.F_PERMISSION)) {
      this.iotlb!.fill(iova, ctx.asid, r.pa, r.perm, r.shift, r.level, r.global);
    }
    if (fault !== 0) return this.faults.translation(fault, ctx, sid, ssid, iova, code, out);
    const perm6 = r.perm;
    out.pa = r.pa;
    out.perm = code >= 3 ? (perm6 >>> 3) & 7 : perm6 & 7;
    out.level = r.level;
    out.pageSize = POW2[r.shift]!;
    out.event = null;
    return true;
  }

  /** A stream other than the last one: resolve its context, then translate or bypass. */
  private translateOther(
    sid: number,
    ssid: number,
    iova: number,
    accessCode: number,
    out: TranslationOut,
  ): boolean {
    let ctx = this.lastContext;
    if (ctx === null || sid !== this.lastSid || ssid !== this.lastSsid) {
      ctx = this.resolver.resolve(sid, ssid, null);
      if (ctx === null) {
        this.counters.translations++;
        return this.faults.config(sid, ssid, out);
      }
      this.lastSid = sid;
      this.lastSsid = ssid;
      this.lastContext = ctx;
    }
    if (ctx.kind !== 0) {
      this.counters.translations++;
      return this.bypass(sid, ssid, iova, accessCode, out);
    }
    return this.translateInto(sid, ssid, iova, accessCode, out);
  }

  private bypass(sid: number, ssid: number, iova: number, accessCode: number, out: TranslationOut): boolean {
    // Both stages bypassed: the IOVA is the PA and must fit the output size.
    if (!(iova < 2 ** this.oas) || !(iova >= 0)) {
      return this.faults.translation(EventType.F_ADDR_SIZE, BYPASS_CONTEXT, sid, ssid, iova, accessCode, out);
    }
    out.pa = iova;
    out.perm = 7;
    out.level = -1;
    out.pageSize = PAGE;
    out.event = null;
    return true;
  }

  /** Every step of one translation, read from memory now: no cache is read or filled, no statistic moves. */
  explain(request: TranslateRequest): TranslationStep[] {
    checkRequest(request, this.features.sidBits);
    const privileged = request.privileged === true;
    const code = accessCodeOf(request.access, privileged);
    const ssid = request.ssid ?? -1;
    const steps: TranslationStep[] = [];
    const out = createTranslationOut();
    const ctx = this.resolver.resolve(request.sid, ssid, steps);
    let ok: boolean;
    if (ctx === null) {
      ok = this.faults.config(request.sid, ssid, out);
      this.counters.faults--;
    } else if (ctx.kind !== 0) {
      steps.push({ label: 'stage 1', value: 'bypass' });
      ok = this.bypass(request.sid, ssid, request.iova, code, out);
      if (!ok) this.counters.faults--;
    } else {
      const walk: TranslationStep[] = [];
      const r = new WalkResult();
      const effective = ctx.accessMap === null ? code : ctx.accessMap[code]!;
      const fault = walkStage1(this.memory, ctx, request.iova, effective, r, walk);
      steps.push({
        label: 'walk',
        fields: {
          asid: ctx.asid,
          granule: POW2[ctx.granuleShift]!,
          inputBits: ctx.inputSize,
          startLevel: ctx.startLevel,
          ttb0: hex(ctx.tableBase),
        },
        children: walk,
      });
      if (fault === 0) {
        out.pa = r.pa;
        out.perm = permBits(r.perm, effective >= 3);
        out.level = r.level;
        out.pageSize = POW2[r.shift]!;
        ok = true;
      } else {
        this.walkResult.fetchAddress = r.fetchAddress;
        ok = this.faults.translation(fault, ctx, request.sid, ssid, request.iova, effective, out);
        this.counters.faults--;
      }
    }
    steps.push(resultStep(ok, out, ctx === null ? this.resolver.eventReason : ''));
    return steps;
  }

  /** Executes one 16-byte CMDQ command. */
  command(bytes: Uint8Array): CommandResult {
    if (!(bytes instanceof Uint8Array) || bytes.length < 16) {
      throw new VmmError(ErrorCode.EINVAL, 'a CMDQ command is 16 bytes');
    }
    this.counters.commands++;
    return executeCommand(decodeCommand(bytes), this.resolver, this.iotlb, () => this.invalidateConfig());
  }

  /**
   * TLBI_NH_VA semantics over any byte range (one command's NUM/SCALE cannot express every
   * length): drops the entries of `asid` (−1: every ASID, as TLBI_NH_VAA) whose mapping overlaps
   * [start, start + length). Used by paravirtual invalidations such as virtio-iommu INVALIDATE.
   */
  invalidateTlbRange(asid: number, start: number, length: number): void {
    if (!(start >= 0) || !(length > 0)) return;
    const end = Math.min(start + length, 2 ** 53);
    if (start >= end) return;
    this.iotlb?.invalidateRange(asid, start, end - start);
  }

  private invalidateConfig(): void {
    this.lastContext = null;
    this.lastSid = -1;
    this.lastSsid = -2;
  }
}
