/** Runs a fuzz surface with fast-check: counts runs and distinct outcomes, shrinks failures. */
import fc from 'fast-check';
import type { Surface } from './surfaces/surface.js';

export interface SurfaceReport {
  surface: string;
  runs: number;
  seed: number;
  outcomes: Map<string, number>;
  /** fast-check's report: seed, path and the shrunk counterexample. */
  failure: string | null;
  ms: number;
}

export async function fuzzSurface(
  surface: Surface,
  runs: number,
  seed: number,
  path?: string,
): Promise<SurfaceReport> {
  const outcomes = new Map<string, number>();
  let count = 0;
  const started = performance.now();
  const details = await fc.check(
    fc.asyncProperty(surface.input, async (input) => {
      const label = await surface.run(input);
      count++;
      outcomes.set(label, (outcomes.get(label) ?? 0) + 1);
    }),
    path === undefined ? { numRuns: runs, seed } : { numRuns: runs, seed, path, endOnFailure: true },
  );
  let failure: string | null = null;
  if (details.failed) {
    failure = [
      `seed ${details.seed}, path "${details.counterexamplePath}"`,
      `counterexample: ${fc.stringify(details.counterexample)}`,
      `error: ${details.errorInstance instanceof Error ? (details.errorInstance.stack ?? details.errorInstance.message) : String(details.errorInstance)}`,
      `reproduce: pnpm fuzz --surface ${surface.name} --seed ${details.seed} --path ${details.counterexamplePath}`,
    ].join('\n');
  }
  return { surface: surface.name, runs: count, seed, outcomes, failure, ms: performance.now() - started };
}
