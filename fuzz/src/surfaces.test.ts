import { describe, expect, it } from 'vitest';
import { fuzzSurface } from './runner.js';
import { SURFACES } from './surfaces/index.js';

describe('fuzz surfaces: a short seeded pass of each', () => {
  for (const surface of SURFACES) {
    it(`${surface.name} holds`, async () => {
      const report = await fuzzSurface(surface, surface.name === 'isolation' ? 60 : 200, 0x5eed);
      expect(report.failure).toBeNull();
      expect(report.runs).toBeGreaterThan(0);
    });
  }
});
