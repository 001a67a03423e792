import { describe, expect, it } from 'vitest';
import { vmSoak } from './soak/vm-soak.js';

describe.each(['inline', 'worker'] as const)('soak, short (%s vCPU)', (mode) => {
  it('10^4 mixed operations: every request OK, every fault reported, memory within the bound', async () => {
    const r = await vmSoak(10_000, mode);
    expect(r.operations).toBeGreaterThanOrEqual(10_000);
    expect(r.badStatuses).toBe(0);
    expect(r.dmaErrors).toBe(0);
    expect(r.reports).toBe(r.faults);
    expect(r.faults).toBeGreaterThan(0);
    expect(r.held).toBe(true);
  });
});
