/**
 * Mappings a driver keeps for a MAP/UNMAP domain so they survive the domain's death on the
 * device: virtio 1.2 §5.13.6.4 ends a domain with its last endpoint, and Linux replays the
 * mappings it holds when an endpoint attaches again (virtio-iommu-wire §3.3, pitfall 6).
 */
import sortedBtree from 'sorted-btree';

// sorted-btree is CommonJS with `exports.default`: Node's default import is `module.exports`,
// a bundler's may already be the class.
type BTreeClass = typeof sortedBtree.default;
const BTree: BTreeClass =
  (sortedBtree as unknown as { default?: BTreeClass }).default ?? (sortedBtree as unknown as BTreeClass);

export interface KeptMapping {
  /** Inclusive bounds. */
  start: bigint;
  end: bigint;
  phys: bigint;
  /** MAP flags. */
  flags: number;
}

const compare = (a: bigint, b: bigint): number => (a < b ? -1 : a > b ? 1 : 0);

export class KeptMappings {
  private readonly tree = new BTree<bigint, KeptMapping>(undefined, compare);

  get size(): number {
    return this.tree.size;
  }

  /** A MAP the device accepted. */
  mapped(start: bigint, end: bigint, phys: bigint, flags: number): void {
    this.tree.set(start, { start, end, phys, flags });
  }

  /** An UNMAP the device accepted: it removed every mapping inside `[start, end]` (virtio 1.2 §5.13.6.6). */
  unmapped(start: bigint, end: bigint): void {
    const inside: bigint[] = [];
    this.tree.forRange(start, end, true, (key, mapping) => {
      if (mapping.end <= end) inside.push(key);
    });
    for (const key of inside) this.tree.delete(key);
  }

  /** Every mapping, in address order. */
  list(): KeptMapping[] {
    return this.tree.valuesArray();
  }
}
