import { hex, VmmError } from '../errors.js';
import type { MmioAccessor, MmioHandler } from '../virtio/types.js';

interface Mapping {
  gpa: number;
  handler: MmioHandler;
}

/** An in-memory MMIO bus for tests: guest-side accessors dispatched to handlers by address. */
export interface TestMmioBus extends MmioAccessor {
  read16(gpa: number): number;
  write16(gpa: number, value: number): void;
  /** Places `handler` at `gpa`; its window must not overlap another. */
  map(gpa: number, handler: MmioHandler): void;
  /** Accesses that hit no handler (they read 0 and are dropped, as on an empty bus). */
  readonly unhandled: number;
}

export function createMmioBus(): TestMmioBus {
  const mappings: Mapping[] = [];
  let unhandled = 0;
  const find = (gpa: number): Mapping | undefined =>
    mappings.find((m) => gpa >= m.gpa && gpa < m.gpa + m.handler.size);
  const read = (gpa: number, size: 1 | 2 | 4): number => {
    const m = find(gpa);
    if (m === undefined) {
      unhandled++;
      return 0;
    }
    return m.handler.read(gpa - m.gpa, size);
  };
  const write = (gpa: number, size: 1 | 2 | 4, value: number): void => {
    const m = find(gpa);
    if (m === undefined) {
      unhandled++;
      return;
    }
    m.handler.write(gpa - m.gpa, size, value);
  };
  return {
    read8: (gpa) => read(gpa, 1),
    read16: (gpa) => read(gpa, 2),
    read32: (gpa) => read(gpa, 4),
    write8: (gpa, value) => write(gpa, 1, value),
    write16: (gpa, value) => write(gpa, 2, value),
    write32: (gpa, value) => write(gpa, 4, value),
    map(gpa, handler) {
      const clash = mappings.find((m) => gpa < m.gpa + m.handler.size && m.gpa < gpa + handler.size);
      if (clash !== undefined) {
        throw new VmmError(
          'EEXIST',
          `${handler.name} at ${hex(gpa)} overlaps ${clash.handler.name} at ${hex(clash.gpa)}`,
        );
      }
      mappings.push({ gpa, handler });
    },
    get unhandled() {
      return unhandled;
    },
  };
}
