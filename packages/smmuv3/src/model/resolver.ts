/**
 * From (StreamID, SubstreamID) to a stage-1 context: STE fetch (linear or two-level stream
 * table, or an STE the host set), substream selection (S1CDMax, S1DSS), CD fetch (single,
 * linear, two-level) and validation — with the STE and CD caches an SMMU keeps.
 *
 * Caches hold only valid structures and are emptied only by the CFGI commands (and by the host
 * replacing a stream's configuration). A failure leaves `event*` fields set and returns null.
 */
import type { GuestMemory, TranslationStep } from '@vmmkit/core';
import { decodeCd } from '../codec/cd.js';
import { EventType } from '../codec/event.js';
import { decodeSte } from '../codec/ste.js';
import {
  accessMapOf,
  BYPASS_CONTEXT,
  type Checked,
  checkCd,
  checkSte,
  type S1Context,
  type SmmuParams,
  type StreamInfo,
  StreamKind,
} from './context.js';
import type { Smmuv3Stats, StreamTableConfig } from './types.js';

/** Type 0 is not an SMMU event ID: an STE with Config abort terminates silently. */
export const ABORT_EVENT_TYPE = 0;

const SSID_SPAN = 2 ** 20;

function hexWords(w: Uint32Array): string {
  const parts: string[] = [];
  for (let i = 0; i < w.length; i += 2) {
    parts.push(`${w[i + 1]!.toString(16).padStart(8, '0')}${w[i]!.toString(16).padStart(8, '0')}`);
  }
  return parts.join(' ');
}

export class ContextResolver {
  streamTable: Required<StreamTableConfig> | null = null;
  /** STEs the host built (setStreamConfig), by StreamID. */
  readonly hostStes = new Map<number, Uint32Array>();
  /** CDs the host holds for a stream without substreams (setStreamConfig's `cd`), by StreamID. */
  readonly hostCds = new Map<number, Uint32Array>();
  private readonly steCache = new Map<number, StreamInfo>();
  /** Key: sid · 2^20 + CD index. */
  private readonly cdCache = new Map<number, S1Context>();
  private readonly words = new Uint32Array(16);
  private readonly pair = new Uint32Array(2);

  /** Set when `resolve` fails. */
  eventType = 0;
  eventFetchAddress = 0;
  /** Why, in words, for explain. */
  eventReason = '';

  constructor(
    private readonly memory: GuestMemory,
    private readonly params: SmmuParams,
    private readonly stats: Smmuv3Stats,
  ) {}

  private fail(type: number, reason: string, fetchAddress = 0): null {
    this.eventType = type;
    this.eventReason = reason;
    this.eventFetchAddress = fetchAddress;
    return null;
  }

  /** Reads `count` 32-bit words at `address`; false when the range is not RAM or beyond the OAS. */
  private fetch(address: number, target: Uint32Array, count: number): boolean {
    if (!(address + count * 4 <= 2 ** this.params.oas)) return false;
    const bank = this.memory.ramBank(address, count * 4);
    if (bank === null) return false;
    const off = address - bank.gpa;
    for (let i = 0; i < count; i++) target[i] = bank.view.getUint32(off + i * 4, true);
    return true;
  }

  private fetchSte(sid: number, trace: TranslationStep[] | null): StreamInfo | null {
    const hostSte = this.hostStes.get(sid);
    let words: Uint32Array;
    let steAddress: number | undefined;
    if (hostSte !== undefined) {
      words = hostSte;
    } else {
      const st = this.streamTable;
      // IHI 0070 §3.3: a StreamID at or beyond 2^LOG2SIZE (or with no table) is C_BAD_STREAMID.
      if (st === null) return this.fail(EventType.C_BAD_STREAMID, 'no stream table and no host STE');
      if (!(sid < 2 ** st.log2Size)) {
        return this.fail(EventType.C_BAD_STREAMID, `StreamID ${sid} ≥ 2^${st.log2Size}`);
      }
      if (st.format === 'linear') {
        steAddress = st.base + sid * 64;
      } else {
        const l1Address = st.base + Math.floor(sid / 2 ** st.split) * 8;
        if (!this.fetch(l1Address, this.pair, 2)) {
          return this.fail(EventType.F_STE_FETCH, 'L1STD not readable', l1Address);
        }
        const span = this.pair[0]! & 0x1f;
        let l2ptr = (this.pair[1]! & 0xfffff) * 2 ** 32 + ((this.pair[0]! & 0xffff_ffc0) >>> 0);
        // §5.1 L2Ptr is [55:6]: bits [55:52] put the array beyond the OAS (§3.4.3: F_STE_FETCH).
        if (((this.pair[1]! >>> 20) & 0xf) !== 0) l2ptr = 2 ** 52;
        if (trace !== null) {
          trace.push({
            label: 'L1STD',
            address: l1Address,
            value: hexWords(this.pair),
            fields: { span, l2ptr },
          });
        }
        // §5.1: Span 0 marks an invalid L2 pointer; values above SPLIT+1 are reserved.
        if (span === 0 || span > st.split + 1) {
          return this.fail(EventType.C_BAD_STREAMID, `L1STD.Span ${span} is invalid`);
        }
        // A StreamID beyond the 2^(Span−1) STEs of the L2 table is out of range (QEMU: C_BAD_STE).
        const l2Index = sid % 2 ** st.split;
        if (l2Index >= 2 ** (span - 1)) {
          return this.fail(EventType.C_BAD_STREAMID, `StreamID ${sid} is beyond L1STD.Span ${span}`);
        }
        // §5.1: L2Ptr[5 + (Span − 1):0] are treated as zero (the array is aligned to its size).
        const arrayBytes = 64 * 2 ** (span - 1);
        steAddress = l2ptr - (l2ptr % arrayBytes) + l2Index * 64;
      }
      words = this.words;
      if (!this.fetch(steAddress, words, 16)) {
        return this.fail(EventType.F_STE_FETCH, 'STE not readable', steAddress);
      }
    }
    const checked = checkSte(words, this.params);
    if (trace !== null) traceStructure(trace, 'STE', steAddress, words, checked);
    if (!checked.ok) return this.fail(checked.type, checked.reason);
    return checked.value;
  }

  private fetchCd(
    sid: number,
    ste: StreamInfo,
    cdIndex: number,
    trace: TranslationStep[] | null,
  ): S1Context | null {
    let cdAddress: number;
    const hostCd = ste.s1cdmax === 0 ? this.hostCds.get(sid) : undefined;
    if (hostCd !== undefined) {
      // A host-held CD (virtio-iommu format 1): nothing to fetch, but validated like any CD.
      const checked = checkCd(hostCd, this.params);
      if (trace !== null) traceStructure(trace, 'CD', undefined, hostCd, checked);
      if (!checked.ok) return this.fail(checked.type, checked.reason);
      return checked.value;
    }
    const oasLimit = 2 ** this.params.oas;
    // §3.4.3 (SMMUv3.1+): a CD or L1CD fetch through S1ContextPtr beyond the OAS is C_BAD_STE.
    if (ste.contextPtrHigh) return this.fail(EventType.C_BAD_STE, 'S1ContextPtr is beyond the OAS');
    const ptr = ste.contextPtr;
    if (ste.s1cdmax === 0) {
      cdAddress = ptr;
    } else if (ste.s1fmt === 0) {
      // §5.2 S1Fmt 0b00: the linear table is aligned to its size; S1ContextPtr[S1CDMax+5:6] are
      // RES0 and treated as zero.
      cdAddress = ptr - (ptr % (64 * 2 ** ste.s1cdmax)) + cdIndex * 64;
    } else {
      const split = ste.s1fmt === 1 ? 6 : 10;
      // §5.2: the L1 table is aligned to its size or 64 bytes, whichever is greater.
      const l1Bytes = Math.max(8 * 2 ** Math.max(ste.s1cdmax - split, 0), 64);
      const l1Address = ptr - (ptr % l1Bytes) + Math.floor(cdIndex / 2 ** split) * 8;
      if (l1Address + 8 > oasLimit) return this.fail(EventType.C_BAD_STE, 'L1CD address is beyond the OAS');
      if (!this.fetch(l1Address, this.pair, 2)) {
        return this.fail(EventType.F_CD_FETCH, 'L1CD not readable', l1Address);
      }
      const lo = this.pair[0]!;
      const hi = this.pair[1]!;
      // §5.3 L2Ptr is [55:12]; with 64K leaves L2Ptr[15:12] are RES0 and treated as zero here.
      const l2ptr = (hi & 0xfffff) * 2 ** 32 + ((lo & (split === 10 ? 0xffff_0000 : 0xffff_f000)) >>> 0);
      if (trace !== null) {
        trace.push({
          label: 'L1CD',
          address: l1Address,
          value: hexWords(this.pair),
          fields: { valid: (lo & 1) === 1, l2ptr },
        });
      }
      // §5.3.1: an L1CD with V=0 leaves the substream without a CD.
      if ((lo & 1) === 0) return this.fail(EventType.C_BAD_SUBSTREAMID, 'L1CD.V is 0');
      cdAddress = l2ptr + (cdIndex % 2 ** split) * 64;
      // §3.4.3 (SMMUv3.1+): an L2Ptr beyond the OAS is C_BAD_SUBSTREAMID.
      if (((hi >>> 20) & 0xf) !== 0 || cdAddress + 64 > oasLimit) {
        return this.fail(EventType.C_BAD_SUBSTREAMID, 'L1CD.L2Ptr is beyond the OAS');
      }
    }
    if (cdAddress + 64 > oasLimit) return this.fail(EventType.C_BAD_STE, 'the CD address is beyond the OAS');
    if (!this.fetch(cdAddress, this.words, 16)) {
      return this.fail(EventType.F_CD_FETCH, 'CD not readable', cdAddress);
    }
    const checked = checkCd(this.words, this.params);
    if (trace !== null) traceStructure(trace, 'CD', cdAddress, this.words, checked);
    if (!checked.ok) return this.fail(checked.type, checked.reason);
    checked.value.cdAddress = cdAddress;
    return checked.value;
  }

  /**
   * The context for a transaction; `ssid` −1 = no SubstreamID. With `trace`, caches are neither
   * read nor filled and every structure read is recorded.
   */
  resolve(sid: number, ssid: number, trace: TranslationStep[] | null): S1Context | null {
    let ste = trace === null ? this.steCache.get(sid) : undefined;
    if (ste !== undefined) {
      this.stats.steCacheHits++;
    } else {
      if (trace === null) this.stats.steCacheMisses++;
      const fetched = this.fetchSte(sid, trace);
      if (fetched === null) return null;
      ste = fetched;
      if (trace === null) this.steCache.set(sid, ste);
    }
    if (ste.kind === StreamKind.ABORT) return this.fail(ABORT_EVENT_TYPE, 'STE.Config is abort');
    // §3.9: with stage 1 bypassed, or S1CDMax = 0, a transaction with a SubstreamID is C_BAD_SUBSTREAMID.
    if (ste.kind === StreamKind.BYPASS) {
      if (ssid >= 0) return this.fail(EventType.C_BAD_SUBSTREAMID, 'SubstreamID on a bypass STE');
      return BYPASS_CONTEXT;
    }
    let cdIndex: number;
    if (ssid >= 0) {
      if (ste.s1cdmax === 0) return this.fail(EventType.C_BAD_SUBSTREAMID, 'SubstreamID but S1CDMax is 0');
      if (!(ssid < 2 ** ste.s1cdmax)) {
        return this.fail(EventType.C_BAD_SUBSTREAMID, `SubstreamID ${ssid} ≥ 2^S1CDMax (${ste.s1cdmax})`);
      }
      // §5.2 S1DSS 0b10: CD 0 serves transactions without a SubstreamID; SubstreamID 0 is then
      // terminated with F_STREAM_DISABLED (§7.3.7).
      if (ssid === 0 && ste.s1dss === 2) {
        return this.fail(EventType.F_STREAM_DISABLED, 'SubstreamID 0 is reserved by S1DSS=SSID0');
      }
      cdIndex = ssid;
    } else if (ste.s1cdmax === 0) {
      cdIndex = 0;
    } else if (ste.s1dss === 0) {
      return this.fail(EventType.F_STREAM_DISABLED, 'no SubstreamID and S1DSS is terminate');
    } else if (ste.s1dss === 1) {
      return BYPASS_CONTEXT;
    } else {
      cdIndex = 0;
    }
    const key = sid * SSID_SPAN + cdIndex;
    let cd = trace === null ? this.cdCache.get(key) : undefined;
    if (cd !== undefined) {
      this.stats.cdCacheHits++;
      return cd;
    }
    if (trace === null) this.stats.cdCacheMisses++;
    const fetched = this.fetchCd(sid, ste, cdIndex, trace);
    if (fetched === null) return null;
    cd = fetched;
    // The context is this stream's own (one per SID and CD index): it can carry the STE's overrides.
    cd.accessMap = accessMapOf(ste.privcfg, ste.instcfg);
    if (trace === null) this.cdCache.set(key, cd);
    return cd;
  }

  /** CFGI_STE / CFGI_STE_RANGE: the STEs and everything fetched through them. */
  invalidateStreams(first: number, last: number): void {
    for (const sid of [...this.steCache.keys()]) if (sid >= first && sid <= last) this.steCache.delete(sid);
    for (const key of [...this.cdCache.keys()]) {
      const sid = Math.floor(key / SSID_SPAN);
      if (sid >= first && sid <= last) this.cdCache.delete(key);
    }
  }

  /** CFGI_CD (`ssid` ≥ 0) or CFGI_CD_ALL (`ssid` −1) for one StreamID. */
  invalidateCds(sid: number, ssid: number): void {
    if (ssid >= 0) {
      this.cdCache.delete(sid * SSID_SPAN + ssid);
      return;
    }
    for (const key of [...this.cdCache.keys()])
      if (Math.floor(key / SSID_SPAN) === sid) this.cdCache.delete(key);
  }

  invalidateAll(): void {
    this.steCache.clear();
    this.cdCache.clear();
  }

  cachedCds(): number {
    return this.cdCache.size;
  }
}

/** The fields of an STE or CD a "why did this DMA go there" view shows (decoded with the cold codecs). */
function shownFields(label: string, words: Uint32Array): Record<string, string | number | boolean> {
  const bytes = new Uint8Array(64);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < 16; i++) view.setUint32(i * 4, words[i]!, true);
  if (label === 'STE') {
    const ste = decodeSte(bytes);
    return {
      config: ste.config,
      s1fmt: ste.s1fmt,
      s1cdmax: ste.s1cdmax,
      s1dss: ste.s1dss,
      s1ContextPtr: `0x${ste.s1ContextPtr.toString(16)}`,
    };
  }
  const cd = decodeCd(bytes);
  return {
    v: cd.valid,
    asid: cd.asid,
    t0sz: cd.t0sz,
    tg0: cd.tg0,
    ips: cd.ips,
    epd0: cd.epd0,
    affd: cd.affd,
    r: cd.r,
    ttb0: `0x${cd.ttb0.toString(16)}`,
  };
}

function traceStructure<T>(
  trace: TranslationStep[],
  label: string,
  address: number | undefined,
  words: Uint32Array,
  checked: Checked<T>,
): void {
  trace.push({
    label,
    ...(address === undefined ? {} : { address }),
    value: hexWords(words),
    fields: {
      ...shownFields(label, words),
      ...(checked.ok ? { valid: true } : { valid: false, reason: checked.reason }),
    },
  });
}
