import { VmmError } from '../errors.js';

/** kvmtool's init priorities: `core_init` … `late_init`. Exits run in the reverse order. */
export const InitPhase = {
  CORE: 0,
  BASE: 1,
  DEVICE: 2,
  VIRTIO_DEVICE: 3,
  LATE: 4,
} as const;
export type InitPhase = (typeof InitPhase)[keyof typeof InitPhase];

const PHASE_NAMES = ['core', 'base', 'device', 'virtio-device', 'late'] as const;

export function phaseName(phase: InitPhase): string {
  return PHASE_NAMES[phase] ?? `phase ${phase}`;
}

/** Init and exit work of one plugin in one phase (kvmtool's `*_init(fn)` / `*_exit(fn)` macros). */
export interface LifecycleHook<Ctx = unknown> {
  /** The plugin's name, used in error messages. */
  plugin: string;
  phase: InitPhase;
  init(ctx: Ctx): void | Promise<void>;
  exit?(ctx: Ctx): void | Promise<void>;
}

/** Hooks that ran their init, so they can be exited in reverse. */
export class Lifecycle<Ctx = unknown> {
  private exited = false;

  constructor(
    private readonly ctx: Ctx,
    private readonly started: LifecycleHook<Ctx>[],
  ) {}

  /** Runs every exit in reverse order of init; an exit that throws does not stop the others. */
  async exit(): Promise<void> {
    if (this.exited) return;
    this.exited = true;
    const failures: unknown[] = [];
    for (const hook of [...this.started].reverse()) {
      try {
        await hook.exit?.(this.ctx);
      } catch (error) {
        failures.push(
          new VmmError(
            'EBUSY',
            `exit of plugin '${hook.plugin}' (${phaseName(hook.phase)}) failed: ${String(error)}`,
            {},
            { cause: error },
          ),
        );
      }
    }
    if (failures.length > 0) throw new AggregateError(failures, `${failures.length} plugin exit(s) failed`);
  }
}

/**
 * Runs the init of every hook by phase, keeping registration order within a phase. When one
 * fails, the hooks already initialised are exited in reverse and the error names the plugin.
 */
export async function runInitPhases<Ctx>(
  hooks: readonly LifecycleHook<Ctx>[],
  ctx: Ctx,
): Promise<Lifecycle<Ctx>> {
  for (const hook of hooks) {
    if (!(hook.phase in PHASE_NAMES)) {
      throw new VmmError(
        'EINVAL',
        `plugin '${hook.plugin}' asks for unknown init phase ${String(hook.phase)}`,
      );
    }
  }
  const ordered = hooks
    .map((hook, index) => ({ hook, index }))
    .sort((a, b) => a.hook.phase - b.hook.phase || a.index - b.index);
  const started: LifecycleHook<Ctx>[] = [];
  for (const { hook } of ordered) {
    try {
      await hook.init(ctx);
    } catch (error) {
      await new Lifecycle(ctx, started).exit().catch(() => undefined);
      const why = error instanceof Error ? error.message : String(error);
      throw new VmmError(
        'EINVAL',
        `init of plugin '${hook.plugin}' in the ${phaseName(hook.phase)} phase failed: ${why}`,
        { plugin: hook.plugin, phase: hook.phase },
        { cause: error },
      );
    }
    started.push(hook);
  }
  return new Lifecycle(ctx, started);
}
