import { ContainerModule } from 'inversify';
import { describe, expect, it } from 'vitest';
import type { NestedTableBackend } from '../nested/backend.js';
import type { NestedBackendRegistry } from '../nested/registry.js';
import type { IoPgtableFormat, IoPgtableOps } from '../pgtable/io-pgtable.js';
import type { IoPgtableRegistry } from '../pgtable/registry.js';
import { InitPhase } from './phases.js';
import { createContainer, definePlugin, lifecycleHooks } from './plugin.js';
import { TOKENS } from './tokens.js';

const fakeFormat = (name: string): IoPgtableFormat => ({
  name,
  vendor: 'test',
  alloc: (cfg) =>
    ({ cfg, map: () => {}, unmap: () => 0, iovaToPhys: () => null, free: () => {} }) as IoPgtableOps,
});

const fakeBackend = (format: number, vendor = 'test'): NestedTableBackend => ({
  vendor,
  describe: () => ({
    format,
    kind: 'page-table',
    asidBits: 16,
    flags: 0,
    outputBits: 48,
    pasidBits: 0,
    pageSizeMask: 0x1000n,
    inputBits: 48,
  }),
  attach: () => ({ ok: false, status: 'unsupp', reason: 'test' }),
});

describe('plugins and the container', () => {
  it('collects every extension the plugins registered into the core registries', () => {
    const one = definePlugin('one', (r) => {
      r.ioPgtableFormat(fakeFormat('fmt-a'));
      r.nestedBackend(fakeBackend(3));
    });
    const two = definePlugin('two', (r) => {
      r.ioPgtableFormat(fakeFormat('fmt-b'));
      r.nestedBackend(fakeBackend(1));
      r.lifecycle({ phase: InitPhase.DEVICE, init: () => {} });
    });
    const container = createContainer([one, two]);
    expect(container.get<IoPgtableRegistry>(TOKENS.IoPgtableRegistry).names()).toEqual(['fmt-a', 'fmt-b']);
    const nested = container.get<NestedBackendRegistry>(TOKENS.NestedBackendRegistry);
    expect(nested.formats()).toEqual([1, 3]);
    expect(nested.find(3)?.vendor).toBe('test');
    expect(nested.find(2)).toBeUndefined();
    expect(lifecycleHooks(container).map((h) => h.plugin)).toEqual(['two']);
  });

  it('works with no plugins at all', () => {
    const container = createContainer();
    expect(container.get<IoPgtableRegistry>(TOKENS.IoPgtableRegistry).names()).toEqual([]);
    expect(lifecycleHooks(container)).toEqual([]);
  });

  it('refuses two backends for one table format, naming both vendors', () => {
    const a = definePlugin('a', (r) => r.nestedBackend(fakeBackend(2, 'arm')));
    const b = definePlugin('b', (r) => r.nestedBackend(fakeBackend(2, 'other')));
    expect(() => createContainer([a, b]).get(TOKENS.NestedBackendRegistry)).toThrow(/'arm' and 'other'/);
  });

  it('lists registered formats when an unknown io-pgtable format is asked for', () => {
    const registry = createContainer([
      definePlugin('a', (r) => r.ioPgtableFormat(fakeFormat('arm-lpae-s1'))),
    ]).get<IoPgtableRegistry>(TOKENS.IoPgtableRegistry);
    expect(() => registry.get('virt')).toThrow("unknown io-pgtable format 'virt' (registered: arm-lpae-s1)");
  });

  it('accepts plain inversify ContainerModules and rejects anything else', () => {
    const raw = new ContainerModule((o) => {
      o.bind(TOKENS.IoPgtableFormat).toConstantValue(fakeFormat('raw'));
    });
    expect(createContainer([raw]).get<IoPgtableRegistry>(TOKENS.IoPgtableRegistry).names()).toEqual(['raw']);
    expect(() => createContainer([{} as ContainerModule])).toThrow(/ContainerModules/);
  });
});
