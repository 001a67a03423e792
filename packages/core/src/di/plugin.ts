import 'reflect-metadata';
import { Container, ContainerModule, type ContainerModuleLoadOptions } from 'inversify';
import { VmmError } from '../errors.js';
import type { NestedTableBackend } from '../nested/backend.js';
import { NestedBackendRegistry } from '../nested/registry.js';
import { PasidTableLibrary } from '../pasid/library.js';
import type { PasidTableVendor } from '../pasid/pasid-table.js';
import type { IoPgtableFormat } from '../pgtable/io-pgtable.js';
import { IoPgtableRegistry } from '../pgtable/registry.js';
import type { LifecycleHook } from './phases.js';
import { TOKENS } from './tokens.js';

/** What a plugin's registration function receives: one-line registration of each kind of extension. */
export interface PluginRegistrar {
  /** The raw inversify bindings, for services of the plugin's own. */
  readonly container: ContainerModuleLoadOptions;
  // biome-ignore lint/suspicious/noExplicitAny: each vendor has its own context type
  pasidTableVendor(vendor: PasidTableVendor<any>): void;
  ioPgtableFormat(format: IoPgtableFormat): void;
  nestedBackend(backend: NestedTableBackend): void;
  // biome-ignore lint/suspicious/noExplicitAny: the context type is the composition root's
  lifecycle(hook: Omit<LifecycleHook<any>, 'plugin'>): void;
}

/** A vmmkit plugin: an inversify `ContainerModule` with a name for error messages. */
export class VmmPlugin extends ContainerModule {
  constructor(
    readonly pluginName: string,
    register: (registrar: PluginRegistrar) => void,
  ) {
    super((options) => {
      register({
        container: options,
        pasidTableVendor: (vendor) => options.bind(TOKENS.PasidTableVendor).toConstantValue(vendor),
        ioPgtableFormat: (format) => options.bind(TOKENS.IoPgtableFormat).toConstantValue(format),
        nestedBackend: (backend) => options.bind(TOKENS.NestedTableBackend).toConstantValue(backend),
        lifecycle: (hook) =>
          options.bind(TOKENS.LifecycleHook).toConstantValue({ ...hook, plugin: pluginName }),
      });
    });
  }
}

/** Declares a plugin: `export const smmuv3Plugin = definePlugin('smmuv3', (r) => { r.pasidTableVendor(…) })`. */
export function definePlugin(name: string, register: (registrar: PluginRegistrar) => void): VmmPlugin {
  if (!name) throw new VmmError('EINVAL', 'a plugin needs a name');
  return new VmmPlugin(name, register);
}

/** Core bindings: the registries, each built from every extension the plugins bound. */
export const corePlugin = new ContainerModule((options) => {
  options
    .bind(TOKENS.PasidTableLibrary)
    .toDynamicValue(
      (ctx) =>
        new PasidTableLibrary(ctx.getAll<PasidTableVendor>(TOKENS.PasidTableVendor, { optional: true })),
    )
    .inSingletonScope();
  options
    .bind(TOKENS.IoPgtableRegistry)
    .toDynamicValue(
      (ctx) => new IoPgtableRegistry(ctx.getAll<IoPgtableFormat>(TOKENS.IoPgtableFormat, { optional: true })),
    )
    .inSingletonScope();
  options
    .bind(TOKENS.NestedBackendRegistry)
    .toDynamicValue(
      (ctx) =>
        new NestedBackendRegistry(
          ctx.getAll<NestedTableBackend>(TOKENS.NestedTableBackend, { optional: true }),
        ),
    )
    .inSingletonScope();
});

/** A container with the core bindings and the given plugins loaded. */
export function createContainer(plugins: readonly ContainerModule[] = []): Container {
  const container = new Container({ defaultScope: 'Singleton' });
  container.load(corePlugin);
  for (const plugin of plugins) {
    if (!(plugin instanceof ContainerModule)) {
      throw new VmmError('EINVAL', 'plugins must be inversify ContainerModules (use definePlugin)');
    }
    container.load(plugin);
  }
  return container;
}

/** Every lifecycle hook the plugins of `container` registered, in registration order. */
export function lifecycleHooks<Ctx>(container: Container): LifecycleHook<Ctx>[] {
  return container.getAll<LifecycleHook<Ctx>>(TOKENS.LifecycleHook, { optional: true });
}
