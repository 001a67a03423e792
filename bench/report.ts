/**
 * `pnpm bench:report`: runs every measure in its own Node process (variants that share a
 * process pollute each other's JIT feedback), several times interleaved, and reports the
 * median. Writes bench/report.json and prints the same as a table.
 *
 *   pnpm bench:report [--runs N] [--only id,id]
 *   pnpm bench:report --describe     rewrites the "How each figure is measured" part of bench/README.md
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { median } from './measure.js';
import { measures } from './measures/index.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    only: { type: 'string' },
    describe: { type: 'boolean' },
  },
});
if (values.describe) {
  writeMethods();
  process.exit(0);
}
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1 || runs > 21) {
  console.error(`--runs takes a whole number from 1 to 21, got '${values.runs}'`);
  process.exit(2);
}
const only = values.only?.split(',').filter(Boolean);
const unknown = only?.filter((id) => !measures.some((m) => m.id === id)) ?? [];
if (unknown.length > 0) {
  console.error(`unknown measure(s) ${unknown.join(', ')}; known: ${measures.map((m) => m.id).join(', ')}`);
  process.exit(2);
}
const selected = measures.filter((m) => !only || only.includes(m.id));
const runner = fileURLToPath(new URL('./run-one.ts', import.meta.url));

const samples = new Map<string, { value: number; baselineValue: number; ratio: number }[]>();
for (let run = 1; run <= runs; run++) {
  for (const measure of selected) {
    process.stderr.write(`run ${run}/${runs}: ${measure.id} … `);
    const out = execFileSync(
      process.execPath,
      ['--conditions=@vmmkit/source', '--import', 'tsx', runner, measure.id],
      {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
        maxBuffer: 1 << 20,
      },
    );
    const result = JSON.parse(out.trim().split('\n').at(-1)!);
    const ratio = result.ratio ?? result.value / result.baselineValue;
    samples.set(measure.id, [...(samples.get(measure.id) ?? []), { ...result, ratio }]);
    process.stderr.write(`${fmt(result.value)} ${measure.unit}, ratio ${ratio.toFixed(3)}\n`);
  }
}

const report = selected.map((measure) => {
  const list = samples.get(measure.id)!;
  const value = median(list.map((s) => s.value));
  const baselineValue = median(list.map((s) => s.baselineValue));
  const ratio = median(list.map((s) => s.ratio));
  return {
    id: measure.id,
    value,
    unit: measure.unit,
    baseline: measure.baseline,
    baselineValue,
    ratio,
    target: measure.target,
    met: measure.meets === undefined ? null : measure.meets({ value, baselineValue, ratio }),
    runs: list.length,
  };
});

writeFileSync(new URL('./report.json', import.meta.url), `${JSON.stringify(report, null, 2)}\n`);
console.table(
  report.map((r) => ({
    id: r.id,
    value: `${fmt(r.value)} ${r.unit}`,
    baseline: `${fmt(r.baselineValue)} (${r.baseline})`,
    ratio: r.ratio.toFixed(3),
    target: r.target,
    met: r.met === null ? '-' : r.met ? 'yes' : 'NO',
  })),
);
console.log(`median of ${runs} run(s), each measure in its own process; written to bench/report.json`);

function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (Math.abs(n) >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return n.toFixed(n < 10 ? 3 : 1);
}

/** The README's list of methods comes from the measures themselves, so it cannot drift from them. */
function writeMethods(): void {
  const readme = new URL('./README.md', import.meta.url);
  const text = readFileSync(readme, 'utf8');
  const begin = '<!-- methods:begin -->';
  const end = '<!-- methods:end -->';
  const from = text.indexOf(begin);
  const to = text.indexOf(end);
  if (from < 0 || to < from) {
    console.error(`bench/README.md lacks the ${begin} ... ${end} markers`);
    process.exit(1);
  }
  const body = measures
    .map(
      (m) => `### \`${m.id}\` — ${m.unit}, target ${m.target}\n\nBaseline: ${m.baseline}.\n\n${m.method}\n`,
    )
    .join('\n');
  writeFileSync(readme, `${text.slice(0, from + begin.length)}\n\n${body}\n${text.slice(to)}`);
  console.log(`bench/README.md: methods of ${measures.length} figures written`);
}
