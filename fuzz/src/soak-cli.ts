/** `pnpm soak [--ops N]`: 10^6 mixed operations by default; exit 1 if memory did not stay flat. */
import { parseArgs } from 'node:util';
import { soak } from './soak.js';

let ops = 1_000_000;
try {
  const { values } = parseArgs({ options: { ops: { type: 'string' } }, strict: true });
  if (values.ops !== undefined) {
    ops = Number(values.ops);
    if (!/^\d+$/.test(values.ops) || ops < 1 || ops > 1e9)
      throw new Error(`--ops must be an integer from 1 to 10^9, got '${values.ops}'`);
  }
} catch (error) {
  process.stderr.write(`soak: ${(error as Error).message}\nusage: pnpm soak [--ops N]\n`);
  process.exit(2);
}
const r = soak(ops);
const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
process.stdout.write(
  `soak (harness, inline): ${r.operations} operations in ${r.seconds.toFixed(1)} s, ${r.opsPerSecond.toFixed(0)} ops/s\n` +
    `  heap ${mib(r.heapStart)} -> ${mib(r.heapEnd)}, rss ${mib(r.rssStart)} -> ${mib(r.rssEnd)}\n` +
    `  bound ${mib(r.bound)} growth: ${r.held ? 'held' : 'EXCEEDED'}\n`,
);
process.exit(r.held ? 0 : 1);
