import type { TranslationStep } from '@vmmkit/core';
import type { DemoReport } from '../demo/report.js';

const hex = (n: number) => `0x${n.toString(16)}`;

/** `65536` → `64 KiB`. */
export function formatBytes(bytes: number): string {
  for (const [unit, size] of [
    ['GiB', 2 ** 30],
    ['MiB', 2 ** 20],
    ['KiB', 2 ** 10],
  ] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size} ${unit}`;
  }
  return `${bytes} B`;
}

/** What the host adds to the guest's report. */
export interface RunStats {
  exits: number;
  doorbells: number;
  unclaimedMmio: number;
  dma: { transfers: number; bytes: number; errors: number };
  iommu: { faultsRaised: number } | null;
}

/** The full outcome of `vmm run`, as `--json` prints it. */
export interface RunSummary {
  ok: boolean;
  machine: { mem: number; cpus: number; mode: string; iommu: string; nested: string };
  report: DemoReport;
  stats: RunStats;
  /** Why the run is not OK (empty when it is). */
  problems: string[];
}

/** Checks the guest's report against what the demo promises. */
export function problemsOf(report: DemoReport): string[] {
  const problems: string[] = [];
  for (const t of report.transfers) {
    const who = t.pasid === null ? 'DMA without PASID' : `DMA for PASID ${t.pasid}`;
    if (!t.ok) problems.push(`${who} failed: ${t.error}`);
    else if (!t.verified) problems.push(`${who} copied wrong data`);
    else if (!t.checksumVerified) problems.push(`${who}: the engine's CRC-32 does not match the data`);
  }
  if (report.transfers.length === 0) problems.push('no DMA ran');
  const fault = report.fault;
  if (fault === null) problems.push('the deliberate fault was not attempted');
  else {
    const expected = report.iommu === 'none' ? 'bus' : 'translation';
    if (fault.engineError !== expected) {
      problems.push(`the deliberate fault ended in '${fault.engineError}', expected '${expected}'`);
    }
    if (report.iommu === 'virtio') {
      if (fault.report === null) problems.push('the IOMMU sent no fault report for the deliberate fault');
      else if (fault.report.endpoint !== report.endpoint) {
        problems.push(
          `the fault report names endpoint ${fault.report.endpoint}, expected ${report.endpoint}`,
        );
      } else if (fault.pasid !== null && fault.report.pasid !== fault.pasid) {
        problems.push(`the fault report names PASID ${fault.report.pasid}, expected ${fault.pasid}`);
      }
    }
  }
  return problems;
}

export function formatSummary(summary: RunSummary): string {
  const { machine, report, stats } = summary;
  const lines: string[] = [];
  lines.push(
    `vmm run: ${formatBytes(machine.mem)} RAM, ${machine.cpus} vCPU${machine.cpus > 1 ? 's' : ''} (${machine.mode}), ` +
      `IOMMU ${machine.iommu}, nested ${machine.nested}`,
  );
  lines.push('', 'IOMMU setup');
  for (const step of report.setup) lines.push(`  ${step}`);
  const size = report.transfers[0]?.bytes;
  lines.push(
    '',
    `DMA engine, endpoint ${report.endpoint}${size ? `, ${formatBytes(size)} per transfer` : ''}`,
  );
  lines.push(
    `  ${'PASID'.padEnd(6)} ${'src IOVA'.padEnd(12)} ${'dst IOVA'.padEnd(12)} ${'data'.padEnd(9)} CRC-32`,
  );
  for (const t of report.transfers) {
    const data = !t.ok ? `FAILED (${t.error})` : t.verified ? 'verified' : 'WRONG';
    const crc = t.checksumVerified ? `${hex(t.crc32)} ok` : t.ok ? `${hex(t.crc32)} MISMATCH` : '-';
    lines.push(
      `  ${(t.pasid === null ? '-' : String(t.pasid)).padEnd(6)} ${hex(t.srcIova).padEnd(12)} ${hex(t.dstIova).padEnd(12)} ${data.padEnd(9)} ${crc}`,
    );
  }
  const fault = report.fault;
  lines.push('', 'Deliberate fault');
  if (fault === null) lines.push('  not attempted');
  else {
    const under = fault.pasid === null ? 'without PASID' : `under PASID ${fault.pasid}`;
    const at = fault.faultIova === null ? '' : ` at ${hex(fault.faultIova)}`;
    const what =
      { translation: 'a translation fault', bus: 'a bus error' }[fault.engineError] ?? fault.engineError;
    lines.push(`  DMA from unmapped IOVA ${hex(fault.iova)} ${under}: the engine stopped with ${what}${at}`);
    if (fault.report) {
      const r = fault.report;
      lines.push(
        `  fault report: reason ${r.reason}, endpoint ${r.endpoint}` +
          `${r.pasid === null ? '' : `, PASID ${r.pasid}`}${r.address === null ? '' : `, address ${hex(r.address)}`}`,
      );
    } else if (report.iommu === 'virtio') lines.push('  no fault report arrived');
    else lines.push('  (no IOMMU: nothing to report the fault)');
  }
  lines.push('', 'Machine');
  lines.push(
    `  ${stats.exits} MMIO exits, ${stats.doorbells} posted doorbells, ${stats.unclaimedMmio} unclaimed MMIO accesses`,
  );
  lines.push(
    `  DMA engine: ${stats.dma.transfers} transfers, ${formatBytes(stats.dma.bytes)}, ${stats.dma.errors} stopped by a fault`,
  );
  if (stats.iommu) lines.push(`  virtio-iommu: ${stats.iommu.faultsRaised} fault report(s) raised`);
  lines.push('');
  const verified = report.transfers.filter((t) => t.verified && t.checksumVerified).length;
  if (summary.ok) {
    lines.push(
      `OK: ${verified}/${report.transfers.length} DMA transfers verified, deliberate fault ${report.iommu === 'none' ? 'stopped the engine' : 'reported'}`,
    );
  } else {
    lines.push('FAILED:');
    for (const p of summary.problems) lines.push(`  - ${p}`);
  }
  return `${lines.join('\n')}\n`;
}

/** A translation as a tree (`├─`, `└─`), one step per line with its fields beneath. */
export function formatSteps(title: string, steps: readonly TranslationStep[]): string {
  const lines = [title];
  const walk = (nodes: readonly TranslationStep[], prefix: string) => {
    nodes.forEach((step, i) => {
      const last = i === nodes.length - 1;
      const at = step.address === undefined ? '' : ` @ ${hex(step.address)}`;
      const value = step.value === undefined ? '' : `: ${step.value}`;
      lines.push(`${prefix}${last ? '└─ ' : '├─ '}${step.label}${at}${value}`);
      const inner = prefix + (last ? '   ' : '│  ');
      const fields = Object.entries(step.fields ?? {});
      // Large numbers are addresses or descriptors: hexadecimal reads better.
      const show = (v: string | number | boolean) =>
        typeof v === 'number' && v > 0xffff ? hex(v) : String(v);
      if (fields.length > 0) lines.push(`${inner}${fields.map(([k, v]) => `${k}=${show(v)}`).join(' ')}`);
      if (step.children) walk(step.children, inner);
    });
  };
  walk(steps, '');
  return `${lines.join('\n')}\n`;
}
