import fc from 'fast-check';
import { describe, it } from 'vitest';
import { scenarioArb } from './isolation/actions.js';
import { runScenario } from './isolation/run.js';

describe('isolation: a hostile guest never reaches what the reference model forbids', () => {
  it('random guest action sequences (seeded)', () => {
    fc.assert(
      fc.property(scenarioArb, (scenario) => {
        runScenario(scenario);
      }),
      { seed: 0x7e57, numRuns: 40 },
    );
  });
});
