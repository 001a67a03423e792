import { describe, expect, it } from 'vitest';
import { soak } from './soak.js';

describe('soak (short)', () => {
  it('10^4 mixed operations keep heap and RSS within the bound', () => {
    const r = soak(10_000);
    expect(r.operations).toBeGreaterThanOrEqual(10_000);
    expect(r.held).toBe(true);
  });
});
