/**
 * `pnpm soak [--ops N] [--mode worker|inline]`: 10^6 mixed guest operations (MAP/UNMAP batches
 * through the request queue, DMA through the IOMMU, faults and their reports) on a VM whose vCPU
 * is a worker thread by default. Prints operations/s and heap/RSS at start and end; exit 1 when
 * memory did not stay within the bound, 2 on invalid arguments.
 */
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { vmSoak } from './soak/vm-soak.js';

// Heap figures only mean something after a full collection. Expose gc() here rather than
// asking for `node --expose-gc`: the flag also reaches the vCPU worker, created later, whose
// guest samples its own heap.
setFlagsFromString('--expose-gc');
globalThis.gc ??= runInNewContext('gc');

const USAGE = 'usage: pnpm soak [--ops N (1..10^9, default 10^6)] [--mode worker|inline (default worker)]';

function usageError(message: string): never {
  process.stderr.write(`soak: ${message}\n${USAGE}\n`);
  process.exit(2);
}

let values: { ops?: string; mode?: string };
try {
  ({ values } = parseArgs({ options: { ops: { type: 'string' }, mode: { type: 'string' } }, strict: true }));
} catch (error) {
  usageError((error as Error).message);
}
const opsText = values.ops ?? '1000000';
const ops = Number(opsText);
if (!/^\d+$/.test(opsText) || ops < 1 || ops > 1e9)
  usageError(`--ops must be an integer from 1 to 10^9, got '${opsText}'`);
const mode = values.mode ?? 'worker';
if (mode !== 'worker' && mode !== 'inline') usageError(`--mode must be 'worker' or 'inline', got '${mode}'`);

const r = await vmSoak(ops, mode);
const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
process.stdout.write(
  [
    `soak (VM, ${r.mode} vCPU): ${r.operations} operations in ${r.seconds.toFixed(1)} s = ${r.opsPerSecond.toFixed(0)} ops/s`,
    `  requests with a non-OK status: ${r.badStatuses}; DMA errors: ${r.dmaErrors}; faults provoked ${r.faults}, reports received ${r.reports}`,
    `  device fault reports: raised ${r.deviceFaults.raised}, delivered ${r.deviceFaults.delivered}, dropped ${r.deviceFaults.dropped}`,
    `  host heap ${mib(r.hostHeapStart)} -> ${mib(r.hostHeapEnd)}; guest heap ${mib(r.heapStart)} -> ${mib(r.heapEnd)}; rss ${mib(r.rssStart)} -> ${mib(r.rssEnd)}`,
    `  bound: heap growth < ${mib(r.heapBound)} (after gc), rss growth < ${mib(r.bound)}: ${r.held ? 'held' : 'EXCEEDED'}`,
    '', // ends the report with a newline
  ].join('\n'),
);
process.exit(r.held && r.badStatuses === 0 && r.dmaErrors === 0 ? 0 : 1);
