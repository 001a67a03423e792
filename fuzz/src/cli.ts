/**
 * `pnpm fuzz [--surface X] [--runs N] [--seed S] [--path P]`: runs fuzz surfaces and prints runs,
 * distinct outcomes and any failure with its seed and shrunk counterexample. Exit 0 when every
 * surface held, 1 on a failure, 2 on invalid arguments.
 */
import { parseArgs } from 'node:util';
import { fuzzSurface } from './runner.js';
import { SURFACES } from './surfaces/index.js';

const USAGE = `usage: pnpm fuzz [--surface NAME] [--runs N] [--seed S] [--path P]
  --surface  one of: ${SURFACES.map((s) => s.name).join(', ')} (default: all)
  --runs     inputs per surface, an integer from 1 to 10000000 (default 1000)
  --seed     fast-check seed, an integer (default: random, printed)
  --path     replay a counterexample path printed by a failure (needs --seed)`;

function usageError(message: string): never {
  process.stderr.write(`fuzz: ${message}\n${USAGE}\n`);
  process.exit(2);
}

function parse() {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      options: {
        surface: { type: 'string' },
        runs: { type: 'string' },
        seed: { type: 'string' },
        path: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    usageError((error as Error).message);
  }
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const surfaceName = values.surface as string | undefined;
  const surfaces = surfaceName === undefined ? SURFACES : SURFACES.filter((s) => s.name === surfaceName);
  if (surfaces.length === 0) usageError(`unknown surface '${surfaceName}'`);
  const runsText = (values.runs as string | undefined) ?? '1000';
  const runs = Number(runsText);
  if (!/^\d+$/.test(runsText) || !Number.isSafeInteger(runs) || runs < 1 || runs > 10_000_000) {
    usageError(`--runs must be an integer from 1 to 10000000, got '${runsText}'`);
  }
  const seedText = values.seed as string | undefined;
  const seed = seedText === undefined ? (Date.now() ^ (Math.random() * 2 ** 31)) | 0 : Number(seedText);
  if (
    seedText !== undefined &&
    (!/^-?\d+$/.test(seedText) || !Number.isSafeInteger(seed) || Math.abs(seed) > 2 ** 31)
  ) {
    usageError(`--seed must be an integer in [-2^31, 2^31], got '${seedText}'`);
  }
  const path = values.path as string | undefined;
  if (path !== undefined && (seedText === undefined || !/^\d+(:\d+)*$/.test(path))) {
    usageError(`--path must look like 12:0:3 and needs --seed, got '${path}'`);
  }
  return { surfaces, runs, seed, path };
}

const { surfaces, runs, seed, path } = parse();
let failed = false;
for (const surface of surfaces) {
  const report = await fuzzSurface(surface, runs, seed, path);
  const rate = (report.runs / (report.ms / 1000)).toFixed(0);
  process.stdout.write(
    `${surface.name}: ${report.runs} runs, seed ${seed}, ${report.outcomes.size} distinct outcomes, ${rate} runs/s\n`,
  );
  const top = [...report.outcomes].sort((a, b) => b[1] - a[1]).slice(0, 12);
  for (const [label, n] of top) process.stdout.write(`  ${String(n).padStart(7)}  ${label}\n`);
  if (report.outcomes.size > top.length)
    process.stdout.write(`  … ${report.outcomes.size - top.length} more\n`);
  if (report.failure !== null) {
    failed = true;
    process.stdout.write(`  FAILED\n${report.failure.replace(/^/gm, '    ')}\n`);
  }
}
process.exit(failed ? 1 : 0);
