/**
 * One figure of the benchmark report: a measured value beside a baseline measured in the same
 * process, on the same data, so the ratio survives a noisy machine.
 */
export interface Measure {
  id: string;
  /** Unit of `value` (and of `baselineValue` unless `baselineUnit` says otherwise). */
  unit: string;
  /** What the baseline is. */
  baseline: string;
  /**
   * The target, as text (e.g. `ratio >= 0.3`), and a check of one result against it. A context
   * figure (one that explains another) has no check: its `met` is null in the report.
   */
  target: string;
  meets?(result: MeasureResult): boolean;
  /** How the figure is measured, for the report's README section. */
  method: string;
  run(): MeasureResult | Promise<MeasureResult>;
}

export interface MeasureResult {
  value: number;
  baselineValue: number;
  /** `value / baselineValue` unless the figure defines its own (e.g. lower is better). */
  ratio?: number;
}

/** Runs `fn` repeatedly for about `ms` milliseconds after a warm-up; returns operations per second. */
export function rate(fn: () => number, ms = 400): number {
  const warmUntil = performance.now() + ms / 4;
  while (performance.now() < warmUntil) fn();
  const samples: number[] = [];
  for (let rep = 0; rep < 5; rep++) {
    let ops = 0;
    const start = performance.now();
    const until = start + ms / 5;
    let now = start;
    while (now < until) {
      ops += fn();
      now = performance.now();
    }
    samples.push((ops * 1000) / (now - start));
  }
  return median(samples);
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * Rates of a measured body and its baseline timed in alternation, batch after batch, so that
 * load from other processes hits both alike. Each body returns the operations it did.
 * Returns operations per second of each (median of the per-slice rates).
 */
export function alternate(
  measured: () => number,
  baseline: () => number,
  ms = 1500,
): { value: number; baselineValue: number } {
  // Warm-up: both bodies reach their optimised code before any timing.
  const warmUntil = performance.now() + ms / 5;
  while (performance.now() < warmUntil) {
    measured();
    baseline();
  }
  const slices = 9;
  const valueRates: number[] = [];
  const baselineRates: number[] = [];
  const sliceMs = ms / slices / 2;
  for (let s = 0; s < slices; s++) {
    baselineRates.push(timeFor(baseline, sliceMs));
    valueRates.push(timeFor(measured, sliceMs));
  }
  return { value: median(valueRates), baselineValue: median(baselineRates) };
}

function timeFor(fn: () => number, ms: number): number {
  let ops = 0;
  const start = performance.now();
  const until = start + ms;
  let now = start;
  while (now < until) {
    ops += fn();
    now = performance.now();
  }
  return (ops * 1000) / (now - start);
}

/**
 * For measures whose body is one long round (thousands of round trips): `rounds` rounds of the
 * baseline and the measured body in alternation, after one warm-up round of each; medians of the
 * per-round rates each returns.
 */
export async function alternateRounds(
  rounds: number,
  baseline: () => number,
  measured: () => number | Promise<number>,
): Promise<{ value: number; baselineValue: number }> {
  const values: number[] = [];
  const baselines: number[] = [];
  for (let round = 0; round <= rounds; round++) {
    const b = baseline();
    const v = await measured();
    if (round > 0) {
      baselines.push(b);
      values.push(v);
    }
  }
  return { value: median(values), baselineValue: median(baselines) };
}

/** Throws when a benchmark body did something other than what it claims to measure. */
export function expect(condition: boolean, what: string): asserts condition {
  if (!condition) throw new Error(`benchmark self-check failed: ${what}`);
}
