import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * Finds the module an installed package exports, as an `import` from a module in `fromDir`
 * would. Node 20 has no API for it: `import.meta.resolve` takes no parent without a flag, and
 * `require.resolve` knows only the `require`/`default` conditions, so ESM-only packages (ours
 * among them: `exports` with `import` only) are "not found". Hence this lookup: `node_modules`
 * upwards from `fromDir`, then `exports` (or `main`) under the ESM conditions. Subpath patterns
 * (`./*`) are not supported; the real path is returned, so the module is loaded only once.
 */
export function resolvePackageEntry(
  spec: string,
  fromDir: string,
  conditions: ReadonlySet<string> = esmConditions(),
): string | null {
  const match = /^((?:@[^/]+\/)?[^/@][^/]*)(\/.*)?$/.exec(spec);
  if (match === null) return null;
  const [, name, rest] = match as unknown as [string, string, string | undefined];
  const subpath = rest === undefined ? '.' : `.${rest}`;
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const root = join(dir, 'node_modules', name);
    if (existsSync(join(root, 'package.json'))) return entryOf(root, subpath, conditions);
    if (dirname(dir) === dir) return null;
  }
}

/** The conditions `import` matches: Node's own plus any `--conditions` this process runs with. */
export function esmConditions(): Set<string> {
  const set = new Set(['node', 'import', 'default', 'module-sync']);
  const args = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  args.forEach((arg, i) => {
    const inline = /^(?:--conditions|-C)=(.+)$/.exec(arg);
    if (inline) set.add(inline[1]!);
    else if ((arg === '--conditions' || arg === '-C') && args[i + 1]) set.add(args[i + 1]!);
  });
  return set;
}

type ExportTarget = string | null | ExportTarget[] | { [key: string]: ExportTarget };

function entryOf(root: string, subpath: string, conditions: ReadonlySet<string>): string | null {
  let pkg: { exports?: ExportTarget; main?: string };
  try {
    pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  } catch {
    return null;
  }
  let target: string | null;
  if (pkg.exports !== undefined) {
    const exp = pkg.exports;
    const isSubpathMap =
      exp !== null && typeof exp === 'object' && !Array.isArray(exp) && Object.keys(exp)[0]?.startsWith('.');
    const entry = isSubpathMap
      ? (exp as Record<string, ExportTarget>)[subpath]
      : subpath === '.'
        ? exp
        : null;
    target = entry === undefined ? null : pick(entry, conditions);
  } else {
    target = subpath === '.' ? (pkg.main ?? 'index.js') : subpath;
  }
  if (target === null) return null;
  const file = join(root, target);
  return existsSync(file) ? realpathSync(file) : null;
}

function pick(target: ExportTarget, conditions: ReadonlySet<string>): string | null {
  if (target === null) return null;
  if (typeof target === 'string') return target;
  if (Array.isArray(target)) {
    for (const t of target) {
      const found = pick(t, conditions);
      if (found !== null) return found;
    }
    return null;
  }
  // Conditions are matched in the order the package lists them, as Node does.
  for (const [key, value] of Object.entries(target)) {
    if (!conditions.has(key)) continue;
    const found = pick(value, conditions);
    if (found !== null) return found;
  }
  return null;
}
