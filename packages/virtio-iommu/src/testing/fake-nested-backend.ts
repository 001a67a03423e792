import {
  DmaAccess,
  definePlugin,
  type GuestMemory,
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
  type VmmPlugin,
} from '@vmmkit/core';
import { TableFormat } from '../protocol/constants.js';

/**
 * A small, honest nested backend for tests: the "virt" page table of the pgtables draft
 * (reference §2.7.4: 4 levels of 512 8-byte PTEs, bit 0 VALID, bit 1 TABLE, bit 2 READ,
 * bit 3 WRITE, 48-bit input) walked in guest memory. As a PASID-table format (`kind:
 * 'pasid-table'`), the payload pointer is instead a linear table of 2^pasidBits le64 roots, entry
 * 0 serving DMA without a PASID. Payload: root pointer le64 at payload offset 8 (request offset
 * 24); every other payload byte must be zero.
 */

export interface FakeNestedBackendOptions {
  format?: number;
  kind?: 'page-table' | 'pasid-table';
  pasidBits?: number;
  vendor?: string;
}

const ROOT_OFFSET = 8;
const PAYLOAD_SIZE = 68;
const TABLE_BYTES = 4096;

class FakeTable implements NestedTable {
  readonly invalidations: NestedInvalidation[] = [];
  released = false;

  constructor(
    private readonly memory: GuestMemory,
    private readonly root: number,
    private readonly pasidBits: number,
    private readonly kind: 'page-table' | 'pasid-table',
  ) {}

  private rootFor(pasid: number, out: NestedTranslation): number {
    if (this.kind === 'page-table') {
      if (pasid !== NO_PASID) return this.fail(out, NestedFaultReason.DOMAIN);
      return this.root;
    }
    const index = pasid === NO_PASID ? 0 : pasid;
    if (index >= 2 ** this.pasidBits) return this.fail(out, NestedFaultReason.DOMAIN);
    const at = this.root + index * 8;
    if (!this.memory.isAccessible(at, 8)) return this.fail(out, NestedFaultReason.WALK_EABT);
    const entry = Number(this.memory.readU64(at) & 0x000f_ffff_ffff_f000n);
    return entry === 0 ? this.fail(out, NestedFaultReason.DOMAIN) : entry;
  }

  private fail(out: NestedTranslation, reason: NestedFaultReason): -1 {
    out.fault = reason;
    out.event = { reason };
    return -1;
  }

  private refuse(out: NestedTranslation, reason: NestedFaultReason): false {
    this.fail(out, reason);
    return false;
  }

  translate(pasid: number, iova: number, access: DmaAccess, out: NestedTranslation): boolean {
    if (iova >= 2 ** 48) return this.refuse(out, NestedFaultReason.OOR_ADDRESS);
    let table = this.rootFor(pasid, out);
    if (table < 0) return false;
    // Four levels at most: the walk is bounded whatever the guest wrote.
    for (let level = 0; level < 4; level++) {
      const shift = 39 - 9 * level;
      const index = Math.floor(iova / 2 ** shift) % 512;
      const at = table + index * 8;
      if (!this.memory.isAccessible(at, 8)) return this.refuse(out, NestedFaultReason.WALK_EABT);
      const pte = this.memory.readU64(at);
      if ((pte & 1n) === 0n) return this.refuse(out, NestedFaultReason.PTE_FETCH);
      const next = Number(pte & 0x000f_ffff_ffff_f000n);
      if ((pte & 2n) !== 0n && level < 3) {
        table = next;
        continue;
      }
      if (level === 0) return this.refuse(out, NestedFaultReason.PTE_FETCH);
      const perm = (pte & 4n ? 1 : 0) | (pte & 8n ? 2 : 0);
      const needed = access === DmaAccess.WRITE ? 2 : 1;
      if ((perm & needed) === 0) return this.refuse(out, NestedFaultReason.PERMISSION);
      const size = 2 ** shift;
      out.pa = Math.floor(next / size) * size + (iova % size);
      out.pageSize = size;
      out.perm = perm;
      return true;
    }
    return this.refuse(out, NestedFaultReason.PTE_FETCH);
  }

  explain(pasid: number, iova: number, access: DmaAccess): TranslationStep[] {
    const out = { pa: 0, pageSize: 0, perm: 0, fault: 0, event: null } as NestedTranslation;
    const ok = this.translate(pasid, iova, access, out);
    return [{ label: 'result', value: ok ? `pa 0x${out.pa.toString(16)}` : `fault ${out.fault}` }];
  }

  invalidate(request: NestedInvalidation): void {
    this.invalidations.push(request);
  }

  sameTable(payload: Uint8Array): boolean {
    return readRoot(payload) === this.root;
  }

  release(): void {
    this.released = true;
  }
}

function readRoot(payload: Uint8Array): number {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  return view.getUint32(ROOT_OFFSET, true) + view.getUint32(ROOT_OFFSET + 4, true) * 0x1_0000_0000;
}

/** The backend, with the tables it bound (for assertions). */
export interface FakeNestedBackend extends NestedTableBackend {
  readonly tables: FakeTable[];
}

export function createFakeNestedBackend(options: FakeNestedBackendOptions = {}): FakeNestedBackend {
  const format = options.format ?? TableFormat.VIRT;
  const kind = options.kind ?? 'page-table';
  const pasidBits = kind === 'pasid-table' ? (options.pasidBits ?? 4) : 0;
  const tables: FakeTable[] = [];
  return {
    vendor: options.vendor ?? 'fake',
    tables,
    describe(): NestedFormatDescription {
      return {
        format,
        kind,
        asidBits: 0,
        flags: 0,
        outputBits: 52,
        pasidBits,
        pageSizeMask: 0x4020_1000n,
        inputBits: 48,
      };
    },
    attach(request: NestedAttachRequest): NestedAttachResult {
      const { payload, memory } = request;
      if (payload.length !== PAYLOAD_SIZE)
        return { ok: false, status: 'inval', reason: 'payload is not 68 bytes' };
      for (let i = 2; i < PAYLOAD_SIZE; i++) {
        if ((i < ROOT_OFFSET || i >= ROOT_OFFSET + 8) && payload[i] !== 0) {
          return { ok: false, status: 'inval', reason: `payload byte ${i} is reserved` };
        }
      }
      const root = readRoot(payload);
      if (root % TABLE_BYTES !== 0)
        return { ok: false, status: 'inval', reason: 'root is not 4 KiB aligned' };
      const bytes = kind === 'pasid-table' ? 8 * 2 ** pasidBits : TABLE_BYTES;
      if (!Number.isSafeInteger(root) || !memory.isAccessible(root, bytes)) {
        return { ok: false, status: 'fault', reason: 'root is not guest RAM' };
      }
      const table = new FakeTable(memory, root, request.pasidBits, kind);
      tables.push(table);
      return { ok: true, table };
    },
  };
}

/** A plugin registering fake backends (for harness `plugins`). */
export function fakeNestedPlugin(...backends: NestedTableBackend[]): VmmPlugin {
  return definePlugin('fake-nested', (r) => {
    for (const backend of backends) r.nestedBackend(backend);
  });
}
