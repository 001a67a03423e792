/**
 * Service identifiers of the vmmkit container. Plugins bind to the multi-valued ones
 * (vendors, formats, backends, hooks); the composition root resolves the singletons.
 */
export const TOKENS = {
  /** `PasidTableVendor`, one binding per PASID-table format (multi). */
  PasidTableVendor: Symbol.for('vmmkit.PasidTableVendor'),
  /** `IoPgtableFormat`, one binding per page-table format (multi). */
  IoPgtableFormat: Symbol.for('vmmkit.IoPgtableFormat'),
  /** `NestedTableBackend`, one binding per virtio-iommu table format (multi). */
  NestedTableBackend: Symbol.for('vmmkit.NestedTableBackend'),
  /** `LifecycleHook`, init/exit work of a plugin in a kvmtool phase (multi). */
  LifecycleHook: Symbol.for('vmmkit.LifecycleHook'),
  /** The `PasidTableLibrary` built from every registered vendor. */
  PasidTableLibrary: Symbol.for('vmmkit.PasidTableLibrary'),
  /** The `IoPgtableRegistry` built from every registered format. */
  IoPgtableRegistry: Symbol.for('vmmkit.IoPgtableRegistry'),
  /** The `NestedBackendRegistry` built from every registered backend. */
  NestedBackendRegistry: Symbol.for('vmmkit.NestedBackendRegistry'),
  /** The machine's `GuestMemory`, bound by the composition root. */
  GuestMemory: Symbol.for('vmmkit.GuestMemory'),
} as const;
