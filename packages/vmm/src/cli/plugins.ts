import { createRequire } from 'node:module';
import { isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ContainerModule } from 'inversify';
import { UsageError } from './args.js';
import { resolvePackageEntry } from './resolve-package.js';

/** A plugin module and the plugins it exports. */
export interface LoadedPluginModule {
  /** The module's URL, so a vCPU can load the same module for its guest-side drivers. */
  url: string;
  plugins: ContainerModule[];
}

/** Resolves `--plugin` as a path (relative to `cwd`) or a package name installed where `cwd` is. */
export function resolvePluginModule(spec: string, cwd: string): string {
  if (spec.startsWith('file:')) return spec;
  if (spec.startsWith('.') || isAbsolute(spec)) return pathToFileURL(resolve(cwd, spec)).href;
  const entry = resolvePackageEntry(spec, resolve(cwd));
  if (entry !== null) return pathToFileURL(entry).href;
  try {
    // CommonJS packages, and anything the ESM lookup does not cover.
    return pathToFileURL(createRequire(join(cwd, 'package.json')).resolve(spec)).href;
  } catch {
    throw new UsageError(
      `--plugin '${spec}' cannot be found from ${cwd} (give a path or an installed package name)`,
    );
  }
}

/** Imports a plugin module and collects every plugin it exports (a default export included). */
export async function loadPluginModule(url: string, label = url): Promise<LoadedPluginModule> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(url)) as Record<string, unknown>;
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    throw new UsageError(`--plugin '${label}' could not be loaded: ${why}`);
  }
  const plugins = [
    ...new Set(Object.values(mod).filter((v): v is ContainerModule => v instanceof ContainerModule)),
  ];
  if (plugins.length === 0) {
    throw new UsageError(
      `--plugin '${label}' exports no plugin (export one made with definePlugin, or any inversify ContainerModule)`,
    );
  }
  return { url, plugins };
}
