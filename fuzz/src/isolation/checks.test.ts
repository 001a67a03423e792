/**
 * The isolation checks are not vacuous: when the model and the device disagree (here because the
 * model is told something false), each kind of check reports a violation.
 */
import { describe, expect, it } from 'vitest';
import type { Action } from './actions.js';
import { IsolationViolation, runScenario } from './run.js';

const attachMap: Action[] = [
  { kind: 'attach', domain: 1, endpoint: 1, flags: 0, reserved: 0 },
  { kind: 'map', domain: 1, page: 0n, pages: 1n, startOff: 0n, endOff: 0n, phys: 5, flags: 3 },
];
const fill = (page: bigint, endpoint = 1): Action => ({
  kind: 'dma',
  endpoint,
  pasid: undefined,
  page,
  offset: 0,
  length: 64,
  op: 'fill',
  value: 0x5a,
});
const run =
  (actions: Action[], overrides = {}, bypass = false) =>
  () =>
    runScenario({ bypass, narrowInput: false, actions }, undefined, overrides);

describe('the isolation checks catch a divergence', () => {
  it('a clean scenario passes', () => {
    expect(run([...attachMap, fill(0n)])).not.toThrow();
  });

  it('a status the spec does not allow', () => {
    expect(run(attachMap, { maxMappingsPerDomain: 0 })).toThrow(/status S_OK, the spec requires S_NOMEM/);
  });

  it('DMA into memory the model does not give (bypass the model does not know of)', () => {
    // The device runs with bypass on; the model believes it off: the identity DMA of an unattached endpoint is a breach.
    expect(run([fill(0x4000_1n, 2)], { bypass: false }, true)).toThrow(IsolationViolation);
  });

  it('a fault where the model allows the access', () => {
    expect(run([fill(0x4000_1n, 2)], { bypass: true }, false)).toThrow(/model allows whole|does not allow/);
  });

  it('a fault with the wrong reason', () => {
    // Endpoint 9 is unknown to the device (R_UNKNOWN); the model is told it exists, unattached (R_DOMAIN).
    const endpoints = new Map([
      [1, []],
      [2, []],
      [3, []],
      [9, []],
    ]);
    expect(run([fill(0n, 9)], { endpoints })).toThrow(/fault reason 0, the spec requires 1/);
  });
});
