import type { BankOptions } from '../memory/bank.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { BitmapPageAllocator, type PageRegion } from '../memory/page-allocator.js';

export interface TestMemoryOptions {
  /** Size of the single RAM bank when `banks` is not given (default 1 MiB). */
  size?: number;
  /** Base of that RAM bank (default 0x4000_0000). */
  base?: number;
  /** Banks to create instead of the single RAM bank; the allocator uses the first RAM bank. */
  banks?: readonly BankOptions[];
  /** Bytes at the top of the allocator's RAM bank handed to the page allocator (default: half of it). */
  allocatorSize?: number;
}

export interface TestMemory {
  memory: GuestMemory;
  allocator: BitmapPageAllocator;
  /** The RAM bank the allocator carves from. */
  ram: PageRegion;
  /** Part of `ram` below the allocator region, free for tests to place data (buffers, rings). */
  scratch: PageRegion;
}

/**
 * Guest memory for tests: RAM banks on SharedArrayBuffers plus a page allocator over the top of
 * the first RAM bank, so rings and tables allocated by drivers never overlap test buffers.
 */
export function createTestMemory(options: TestMemoryOptions = {}): TestMemory {
  const banks = options.banks ?? [
    { gpa: options.base ?? 0x4000_0000, size: options.size ?? 0x10_0000, kind: 'ram' },
  ];
  const memory = new GuestMemory();
  for (const bank of banks) memory.addBank(bank);
  const first = memory.bankList.find((b) => b.kind === 'ram' && !b.readOnly);
  if (first === undefined) throw new Error('createTestMemory needs at least one writable RAM bank');
  const allocatorSize =
    options.allocatorSize ?? Math.max(0x1000, Math.floor(first.size / 2 / 0x1000) * 0x1000);
  const region = { base: first.end - allocatorSize, size: allocatorSize };
  return {
    memory,
    allocator: new BitmapPageAllocator(memory, region),
    ram: { base: first.gpa, size: first.size },
    scratch: { base: first.gpa, size: first.size - allocatorSize },
  };
}
