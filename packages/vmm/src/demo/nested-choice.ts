import type { IoPgtableRegistry, PasidTableLibrary } from '@vmmkit/core';
import type { NestedChoice } from './report.js';

/** The io-pgtable format each built-in PASID-table vendor's contexts use. */
const DEFAULT_PGTABLE: Record<string, string> = { arm: 'arm-lpae-s1', 'arm-smmu-v3': 'arm-lpae-s1' };

/** The `--nested` values the loaded plugins make acceptable. */
export function acceptedNested(library: PasidTableLibrary, pgtables: IoPgtableRegistry): string[] {
  const accepted = new Set<string>(['off']);
  for (const format of library.formats()) {
    accepted.add(format);
    accepted.add(library.vendorFor(format).vendor);
  }
  for (const name of pgtables.names()) if (pgtables.get(name).attachDescriptor) accepted.add(name);
  return [...accepted];
}

/**
 * Resolves `--nested name[:pgtable]`: `off` (MAP/UNMAP), a PASID-table format or vendor (its
 * contexts use `pgtable`, by default the vendor's usual format), or a single page-table format
 * the guest can attach directly. Returns a reason string when the name is not accepted.
 */
export function resolveNested(
  spec: string,
  library: PasidTableLibrary,
  pgtables: IoPgtableRegistry,
): NestedChoice | string {
  if (spec === 'off') return { kind: 'off' };
  const [name, pgtable] = spec.split(':', 2) as [string, string | undefined];
  const accepted = acceptedNested(library, pgtables).join(', ');
  let pasidFormat: string | null = null;
  try {
    pasidFormat = library.vendorFor(name).format;
  } catch {
    pasidFormat = null;
  }
  if (pasidFormat !== null) {
    const vendor = library.vendorFor(name).vendor;
    const pgtableFormat = pgtable ?? DEFAULT_PGTABLE[name] ?? DEFAULT_PGTABLE[vendor] ?? soleFormat(pgtables);
    if (pgtableFormat === null) {
      return `--nested ${spec}: say which page-table format its contexts use, as ${name}:<format> (registered: ${pgtables.names().join(', ')})`;
    }
    if (!pgtables.names().includes(pgtableFormat)) {
      return `--nested ${spec}: no page-table format '${pgtableFormat}' is registered (registered: ${pgtables.names().join(', ') || 'none'})`;
    }
    return { kind: 'pasid-table', pasidTableFormat: pasidFormat, pgtableFormat };
  }
  if (pgtable === undefined && pgtables.names().includes(name) && pgtables.get(name).attachDescriptor) {
    return { kind: 'page-table', pgtableFormat: name };
  }
  return `--nested '${spec}' is not accepted (accepted: ${accepted})`;
}

function soleFormat(pgtables: IoPgtableRegistry): string | null {
  const names = pgtables.names();
  return names.length === 1 ? names[0]! : null;
}

/** How a choice reads in the summary. */
export function describeNested(choice: NestedChoice): string {
  if (choice.kind === 'off') return 'off (MAP/UNMAP)';
  if (choice.kind === 'page-table') return `${choice.pgtableFormat} page table`;
  return `${choice.pasidTableFormat} PASID table, ${choice.pgtableFormat} contexts`;
}
