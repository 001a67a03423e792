import {
  DmaAccess,
  type GuestMemory,
  hex,
  type NestedAttachRequest,
  type NestedAttachResult,
  NestedFaultReason,
  type NestedFormatDescription,
  type NestedInvalidation,
  type NestedTable,
  type NestedTableBackend,
  type NestedTranslation,
  NO_PASID,
  type TranslationStep,
} from '@vmmkit/core';
import {
  entryAddress,
  INPUT_BITS,
  LEVELS,
  levelIndex,
  levelShift,
  OUTPUT_BITS,
  PAGE_SIZE_BITMAP,
  PTE_READ,
  PTE_TABLE,
  PTE_VALID,
  PTE_WRITE,
  TABLE_BYTES,
  VIRT_TABLE_FORMAT,
} from './virt-format.js';

/** Entries of the small direct-mapped TLB each attached table keeps. */
const TLB_ENTRIES = 256;

/**
 * Host side of the `virt` format: walks the tables the guest wrote, straight from guest memory.
 * Translations are cached in a small TLB that only INVALIDATE empties, so a guest that edits its
 * tables without invalidating keeps seeing the old translation — as with any real IOMMU.
 */
class VirtTable implements NestedTable {
  private readonly tlbPage = new Float64Array(TLB_ENTRIES).fill(-1);
  private readonly tlbOutput = new Float64Array(TLB_ENTRIES);
  private readonly tlbPerm = new Uint8Array(TLB_ENTRIES);

  constructor(
    private readonly memory: GuestMemory,
    readonly pgd: number,
  ) {}

  translate(pasid: number, iova: number, access: DmaAccess, out: NestedTranslation): boolean {
    out.event = null;
    // The format has no PASIDs: a transaction with one has no context here.
    if (pasid !== NO_PASID)
      return fail(out, NestedFaultReason.DOMAIN, `PASID ${pasid} on a table without PASIDs`);
    if (!(iova >= 0 && iova < 2 ** INPUT_BITS))
      return fail(out, NestedFaultReason.OOR_ADDRESS, `IOVA ${hex(iova)} beyond 48 bits`);
    const page = Math.floor(iova / 4096);
    const slot = page % TLB_ENTRIES;
    let perm: number;
    if (this.tlbPage[slot] === page) {
      out.pa = this.tlbOutput[slot]! + (iova % 4096);
      out.pageSize = 4096;
      perm = this.tlbPerm[slot]!;
    } else {
      const steps: TranslationStep[] | null = null;
      if (!this.walk(iova, out, steps)) return false;
      perm = out.perm;
      this.tlbPage[slot] = page;
      this.tlbOutput[slot] = out.pa - (iova % 4096);
      this.tlbPerm[slot] = perm;
    }
    out.perm = perm;
    const allowed = access === DmaAccess.WRITE ? (perm & 2) !== 0 : (perm & 1) !== 0;
    if (!allowed)
      return fail(out, NestedFaultReason.PERMISSION, `${accessName(access)} not permitted at ${hex(iova)}`);
    return true;
  }

  explain(pasid: number, iova: number, access: DmaAccess): TranslationStep[] {
    const steps: TranslationStep[] = [{ label: 'table', value: `virt, pgd ${hex(this.pgd)}` }];
    const out = {
      pa: 0,
      pageSize: 0,
      perm: 0,
      fault: NestedFaultReason.UNKNOWN,
      event: null,
    } as NestedTranslation;
    let ok = pasid === NO_PASID && iova >= 0 && iova < 2 ** INPUT_BITS && this.walk(iova, out, steps);
    if (ok && !(access === DmaAccess.WRITE ? out.perm & 2 : out.perm & 1)) {
      ok = false;
      fail(out, NestedFaultReason.PERMISSION, `${accessName(access)} not permitted`);
    }
    steps.push(
      ok
        ? {
            label: 'result',
            value: `${hex(iova)} -> ${hex(out.pa)}`,
            fields: { pageSize: out.pageSize, perm: out.perm },
          }
        : {
            label: 'result',
            value: `fault ${out.fault}`,
            fields: { reason: String(out.event ?? 'PASID or range') },
          },
    );
    return steps;
  }

  invalidate(request: NestedInvalidation): void {
    if (!request.caches.iotlb) return;
    if (request.granularity !== 'va') {
      this.tlbPage.fill(-1);
      return;
    }
    const first = Number(request.virtStart >> 12n);
    const count = Number(request.nrPages > 1n << 40n ? 1n << 40n : request.nrPages);
    const pagesPerEntry = 2 ** Math.max(0, request.granule - 12);
    const last = first + count * pagesPerEntry;
    if (count * pagesPerEntry >= TLB_ENTRIES) {
      this.tlbPage.fill(-1);
      return;
    }
    for (let page = first; page < last; page++) {
      if (this.tlbPage[page % TLB_ENTRIES] === page) this.tlbPage[page % TLB_ENTRIES] = -1;
    }
  }

  sameTable(payload: Uint8Array): boolean {
    return parsePayload(payload).pgd === this.pgd;
  }

  release(): void {
    this.tlbPage.fill(-1);
  }

  /** One walk from the pgd; fills `out` (pa, pageSize, perm) or the fault. */
  private walk(iova: number, out: NestedTranslation, steps: TranslationStep[] | null): boolean {
    let table = this.pgd;
    for (let level = 0; level < LEVELS; level++) {
      const index = levelIndex(iova, level);
      const entry = table + index * 8;
      const bank = this.memory.ramBank(entry, 8);
      if (bank === null) {
        steps?.push({
          label: `L${level} table`,
          address: table,
          fields: { index },
          value: 'outside guest RAM',
        });
        return fail(out, NestedFaultReason.WALK_EABT, `L${level} entry ${hex(entry)} is outside guest RAM`);
      }
      const lo = bank.view.getUint32(entry - bank.gpa, true);
      const hi = bank.view.getUint32(entry - bank.gpa + 4, true);
      steps?.push({
        label: `L${level} table`,
        address: table,
        fields: { index, entry: hex(entry) },
        value: `0x${hi.toString(16).padStart(8, '0')}${lo.toString(16).padStart(8, '0')}`,
      });
      if ((lo & PTE_VALID) === 0) return fail(out, NestedFaultReason.PTE_FETCH, `L${level} entry not valid`);
      const isTable = (lo & PTE_TABLE) !== 0;
      if (isTable && level < LEVELS - 1) {
        table = entryAddress(lo, hi);
        continue;
      }
      // A leaf at level 0, or a table bit at level 3, is not an encoding of this format.
      if (level === 0 || isTable)
        return fail(out, NestedFaultReason.PTE_FETCH, `L${level} entry is malformed`);
      const size = 2 ** levelShift(level);
      const base = entryAddress(lo, hi);
      out.pa = base - (base % size) + (iova % size);
      out.pageSize = size;
      out.perm = (lo & PTE_READ ? 1 : 0) | (lo & PTE_WRITE ? 2 : 0);
      return true;
    }
    return fail(out, NestedFaultReason.PTE_FETCH, 'walk did not end in a leaf');
  }
}

function fail(out: NestedTranslation, reason: NestedFaultReason, why: string): false {
  out.fault = reason;
  out.event = why;
  return false;
}

function accessName(access: DmaAccess): string {
  return access === DmaAccess.WRITE ? 'write' : access === DmaAccess.EXEC ? 'exec' : 'read';
}

/** Payload = ATTACH_TABLE bytes 16..83: le16 format, reserved[6], pgd le64 @8, reserved to the end. */
function parsePayload(payload: Uint8Array): { pgd: number; reservedClear: boolean; pgdHi: number } {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const lo = view.getUint32(8, true);
  const hi = view.getUint32(12, true);
  let reservedClear = true;
  for (let i = 2; i < payload.length; i++) {
    if ((i < 8 || i >= 16) && payload[i] !== 0) reservedClear = false;
  }
  return { pgd: hi * 2 ** 32 + lo, reservedClear, pgdHi: hi };
}

/** The host-side backend of table format 3. */
export const virtNestedBackend: NestedTableBackend = {
  vendor: 'virt',
  describe(): NestedFormatDescription {
    return {
      format: VIRT_TABLE_FORMAT,
      kind: 'page-table',
      asidBits: 0,
      flags: 0,
      outputBits: OUTPUT_BITS,
      pasidBits: 0,
      pageSizeMask: BigInt(PAGE_SIZE_BITMAP),
      inputBits: INPUT_BITS,
    };
  },
  attach(request: NestedAttachRequest): NestedAttachResult {
    if (request.payload.length < 16)
      return { ok: false, status: 'inval', reason: 'payload shorter than the virt layout' };
    const { pgd, reservedClear, pgdHi } = parsePayload(request.payload);
    if (!reservedClear)
      return { ok: false, status: 'inval', reason: 'reserved bytes of the virt payload are not zero' };
    // PROTOCOL.md: a misaligned table pointer is S_INVAL, one outside guest RAM S_FAULT.
    if (pgdHi >= 2 ** 20 || pgd % TABLE_BYTES !== 0)
      return { ok: false, status: 'inval', reason: `pgd ${hex(pgd)} is not a 4 KiB aligned 52-bit address` };
    if (!request.memory.isAccessible(pgd, TABLE_BYTES))
      return { ok: false, status: 'fault', reason: `pgd ${hex(pgd)} is not in guest RAM` };
    return { ok: true, table: new VirtTable(request.memory, pgd) };
  },
};
