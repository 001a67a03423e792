import { describe, expect, it } from 'vitest';
import { isVmmError } from '../errors.js';
import { InitPhase, type LifecycleHook, runInitPhases } from './phases.js';

function recorder() {
  const hook = (plugin: string, phase: InitPhase, fail = false): LifecycleHook<string[]> => ({
    plugin,
    phase,
    init: (ctx) => {
      if (fail) throw new Error(`${plugin} cannot start`);
      ctx.push(`init ${plugin}`);
    },
    exit: (ctx) => {
      ctx.push(`exit ${plugin}`);
    },
  });
  return { hook };
}

describe('init phases', () => {
  it('runs hooks by phase (kvmtool order), keeping registration order within a phase, and exits in reverse', async () => {
    const { hook } = recorder();
    const ctx: string[] = [];
    const lc = await runInitPhases(
      [
        hook('late', InitPhase.LATE),
        hook('dev', InitPhase.DEVICE),
        hook('core', InitPhase.CORE),
        hook('dev2', InitPhase.DEVICE),
      ],
      ctx,
    );
    expect(ctx).toEqual(['init core', 'init dev', 'init dev2', 'init late']);
    await lc.exit();
    expect(ctx.slice(4)).toEqual(['exit late', 'exit dev2', 'exit dev', 'exit core']);
    await lc.exit();
    expect(ctx).toHaveLength(8);
  });

  it('names the failing plugin and phase and exits what already started', async () => {
    const { hook } = recorder();
    const ctx: string[] = [];
    const run = runInitPhases(
      [
        hook('base', InitPhase.BASE),
        hook('broken-dev', InitPhase.DEVICE, true),
        hook('late', InitPhase.LATE),
      ],
      ctx,
    );
    await expect(run).rejects.toSatisfy(
      (error: unknown) =>
        isVmmError(error) &&
        /plugin 'broken-dev' in the device phase failed: broken-dev cannot start/.test(error.message),
    );
    expect(ctx).toEqual(['init base', 'exit base']);
  });

  it('refuses an unknown phase before running anything', async () => {
    const { hook } = recorder();
    const ctx: string[] = [];
    await expect(
      runInitPhases([hook('ok', InitPhase.CORE), hook('odd', 9 as InitPhase)], ctx),
    ).rejects.toThrow(/unknown init phase 9/);
    expect(ctx).toEqual([]);
  });

  it('runs every exit even when one fails, and reports the failures', async () => {
    const ctx: string[] = [];
    const lc = await runInitPhases<string[]>(
      [
        { plugin: 'a', phase: InitPhase.CORE, init: () => {}, exit: (c) => void c.push('exit a') },
        {
          plugin: 'b',
          phase: InitPhase.BASE,
          init: () => {},
          exit: () => {
            throw new Error('stuck');
          },
        },
      ],
      ctx,
    );
    await expect(lc.exit()).rejects.toThrow(/1 plugin exit\(s\) failed/);
    expect(ctx).toEqual(['exit a']);
  });
});
