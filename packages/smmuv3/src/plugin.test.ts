import {
  createContainer,
  type IoPgtableRegistry,
  type NestedBackendRegistry,
  type PasidTableLibrary,
  TOKENS,
} from '@vmmkit/core';
import { describe, expect, it } from 'vitest';
import { createSmmuv3Plugin, smmuv3Plugin } from './plugin.js';

describe('smmuv3Plugin', () => {
  it('registers the arm PASID-table vendor, the arm-lpae-s1 format and nested formats 1 and 2', () => {
    const container = createContainer([smmuv3Plugin]);
    const pasid = container.get<PasidTableLibrary>(TOKENS.PasidTableLibrary);
    expect(pasid.formats()).toContain('arm-smmu-v3');
    expect(pasid.vendorFor('arm-smmu-v3').vendor).toBe('arm');
    const pgtables = container.get<IoPgtableRegistry>(TOKENS.IoPgtableRegistry);
    expect(pgtables.names()).toContain('arm-lpae-s1');
    const nested = container.get<NestedBackendRegistry>(TOKENS.NestedBackendRegistry);
    expect(nested.formats()).toEqual([1, 2]);
    expect(nested.find(1)?.describe(0)).toMatchObject({ kind: 'page-table', pasidBits: 0 });
    expect(nested.find(2)?.describe(0)).toMatchObject({ kind: 'pasid-table', pasidBits: 20, outputBits: 48 });
  });

  it('createSmmuv3Plugin configures the modelled SMMU', () => {
    const container = createContainer([createSmmuv3Plugin({ oas: 44, pasidBits: 16 })]);
    const nested = container.get<NestedBackendRegistry>(TOKENS.NestedBackendRegistry);
    expect(nested.describe(0)).toEqual([
      expect.objectContaining({ format: 1, outputBits: 44, pasidBits: 0 }),
      expect.objectContaining({ format: 2, outputBits: 44, pasidBits: 16 }),
    ]);
    expect(() => createSmmuv3Plugin({ pasidBits: 21 })).toThrow(/pasidBits/);
  });
});
