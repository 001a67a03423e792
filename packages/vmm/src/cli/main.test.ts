import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { main } from './main.js';

async function vmm(...argv: string[]) {
  let out = '';
  let err = '';
  const status = await main(argv, {
    out: (t) => {
      out += t;
    },
    err: (t) => {
      err += t;
    },
    cwd: fileURLToPath(new URL('.', import.meta.url)),
  });
  return { status, out, err };
}

describe('vmm', () => {
  it('exits 2 with the reason and a pointer to --help on invalid arguments', async () => {
    const bad = await vmm('run', '--cpus', '100');
    expect(bad.status).toBe(2);
    expect(bad.err).toBe(
      "vmm: --cpus 100 is out of range (accepted: 1 to 64)\nRun 'vmm --help' for the accepted options.\n",
    );
    expect(bad.out).toBe('');
  });

  it('checks --nested against the formats the loaded plugins register', async () => {
    const bad = await vmm('run', '--nested', 'riscv');
    expect(bad.status).toBe(2);
    expect(bad.err).toMatch(/--nested 'riscv' is not accepted \(accepted: off, .*arm/);
  });

  it('exits 2 for a plugin that cannot be loaded or exports no plugin', async () => {
    const missing = await vmm('run', '--plugin', './no-such-plugin.js');
    expect(missing.status).toBe(2);
    expect(missing.err).toMatch(/--plugin '.\/no-such-plugin.js' could not be loaded/);
    const notAPlugin = await vmm('run', '--plugin', './format.ts');
    expect(notAPlugin.status).toBe(2);
    expect(notAPlugin.err).toMatch(/exports no plugin/);
  });

  it('prints the usage for help', async () => {
    const help = await vmm('--help');
    expect(help.status).toBe(0);
    expect(help.out).toMatch(/^Usage: vmm <command>/);
    expect(help.out).toMatch(/--iommu <kind>\s+virtio \| none/);
    expect((await vmm('--version')).out).toMatch(/^vmm \d+\.\d+\.\d+/);
  });

  it('runs the demo without an IOMMU: DMA verified, the stray DMA stopped by a bus error', async () => {
    const run = await vmm('run', '--iommu', 'none', '--mode', 'inline', '--json');
    expect(run.err).toBe('');
    expect(run.status).toBe(0);
    const summary = JSON.parse(run.out);
    expect(summary.ok).toBe(true);
    expect(summary.report.transfers).toEqual([
      expect.objectContaining({
        pasid: null,
        ok: true,
        verified: true,
        checksumVerified: true,
        bytes: 65536,
      }),
    ]);
    expect(summary.report.fault).toMatchObject({ engineError: 'bus', report: null });
    expect(summary.stats.dma).toEqual({ transfers: 3, bytes: 2 * 65536, errors: 1 });
  });

  it.each(['inline', 'worker'])(
    'runs the default demo (%s): a PASID table, one verified DMA per PASID, the fault reported',
    async (mode) => {
      const run = await vmm('run', '--mode', mode, '--pasids', '3', '--json');
      expect(run.err).toBe('');
      expect(run.status).toBe(0);
      const summary = JSON.parse(run.out);
      expect(summary).toMatchObject({
        ok: true,
        problems: [],
        machine: { mode, iommu: 'virtio', nested: 'arm-smmu-v3 PASID table, arm-lpae-s1 contexts' },
      });
      expect(summary.report.transfers.map((t: { pasid: number }) => t.pasid)).toEqual([1, 2, 3]);
      for (const t of summary.report.transfers) {
        expect(t).toMatchObject({ ok: true, verified: true, checksumVerified: true, bytes: 65536 });
      }
      expect(summary.report.fault).toMatchObject({
        pasid: 1,
        engineError: 'translation',
        report: { endpoint: 0x10, pasid: 1, address: 0x7fff_0000 },
      });
      // 3 copies and 3 checksums of 64 KiB, and the stray DMA that moved nothing.
      expect(summary.stats.dma).toEqual({ transfers: 7, bytes: 6 * 65536, errors: 1 });
      expect(summary.stats.iommu).toEqual({ faultsRaised: 1 });
      if (mode === 'worker') expect(summary.stats.exits).toBeGreaterThan(0);
    },
  );

  it('runs with --nested off through MAP/UNMAP on 2 worker vCPUs: no PASIDs, the fault a mapping fault', async () => {
    const run = await vmm('run', '--nested', 'off', '--cpus', '2', '--json');
    expect(run.status).toBe(0);
    const summary = JSON.parse(run.out);
    expect(summary.machine).toMatchObject({ cpus: 2, mode: 'worker', nested: 'off (MAP/UNMAP)' });
    expect(summary.report.setup).toContain('attached to MAP/UNMAP domain 0');
    expect(summary.report.transfers).toEqual([expect.objectContaining({ pasid: null, verified: true })]);
    expect(summary.report.fault.report).toMatchObject({ reason: 'mapping', endpoint: 16, pasid: null });
  });

  it('prints a readable summary and shows progress on stderr while it runs', async () => {
    const run = await vmm('run', '--mode', 'inline', '--pasids', '2');
    expect(run.status).toBe(0);
    expect(run.out).toMatch(/^vmm run: 64 MiB RAM, 1 vCPU \(inline\), IOMMU virtio/);
    expect(run.out).toMatch(/^ {2}2 {6}0x40000000 {3}0x40010000 {3}verified {2}0x[0-9a-f]+ ok$/m);
    expect(run.out).toMatch(/fault report: reason pte-fetch, endpoint 16, PASID 1, address 0x7fff0000/);
    expect(run.out).toMatch(/\nOK: 2\/2 DMA transfers verified, deliberate fault reported\n$/);
    expect(run.err.split('\n')).toEqual(
      expect.arrayContaining([
        '[vcpu 0] [1/2] DMA for PASID 1: 65536 bytes, verified',
        '[vcpu 0] [2/2] DMA for PASID 2: 65536 bytes, verified',
      ]),
    );
  });

  it('explains one translation as a tree: stream table entry, context descriptor, each level, result', async () => {
    const run = await vmm('explain', '--mode', 'inline', '--pasid', '2', '--iova', '0x40001008');
    expect(run.status).toBe(0);
    const lines = run.out.trimEnd().split('\n');
    expect(lines[0]).toBe(
      'IOVA 0x40001008, PASID 2, endpoint 16 (read), arm-smmu-v3 PASID table, arm-lpae-s1 contexts',
    );
    expect(lines[1]).toMatch(/^├─ STE: [0-9a-f]{16}/);
    expect(run.out).toMatch(/├─ CD @ 0x[0-9a-f]+: .*\n│ {2}v=true asid=2 /);
    for (const level of ['L0', 'L1', 'L2']) expect(run.out).toMatch(new RegExp(`│  ├─ ${level} @ 0x`));
    expect(run.out).toMatch(/│ {2}└─ L3 @ 0x[0-9a-f]+: 0x[0-9a-f]{16}\n/);
    expect(lines.at(-2)).toMatch(/^└─ result: pa 0x[0-9a-f]+008$/);
    expect(lines.at(-1)).toMatch(/^ {3}pa=0x[0-9a-f]+ read=true write=true/);
  });

  it('explains an unmapped address as the fault the walk ends in, and checks --pasid', async () => {
    const fault = await vmm('explain', '--mode', 'inline', '--pasid', '1', '--iova', '0x7fff0000', '--json');
    expect(fault.status).toBe(0);
    const { steps } = JSON.parse(fault.out);
    expect(steps.at(-1)).toMatchObject({ label: 'result', value: 'fault F_TRANSLATION' });
    const outOfRange = await vmm('explain', '--mode', 'inline', '--pasid', '9', '--iova', '0');
    expect(outOfRange.status).toBe(2);
    expect(outOfRange.err).toMatch(/--pasid 9: the demo attaches PASIDs 1 to 4 \(see --pasids\)/);
    // --pasids widens what explain may ask for, as it widens what run attaches.
    const sixth = await vmm(
      'explain',
      '--mode',
      'inline',
      '--pasids',
      '6',
      '--pasid',
      '6',
      '--iova',
      '0x40000000',
    );
    expect(sixth.status).toBe(0);
    expect(sixth.out).toMatch(/^IOVA 0x40000000, PASID 6, /);
    expect(sixth.out).toMatch(/v=true asid=6 /);
    const missing = await vmm('explain', '--mode', 'inline', '--iova', '0');
    expect(missing.status).toBe(2);
    expect(missing.err).toMatch(/a PASID table needs --pasid/);
  });

  it('uses page-table formats a plugin registers (the vendor-plugin example), run and explain', async () => {
    const plugin = fileURLToPath(new URL('../../../../examples/vendor-plugin/src/index.ts', import.meta.url));
    const run = await vmm('run', '--mode', 'inline', '--plugin', plugin, '--nested', 'virt', '--json');
    expect(run.status).toBe(0);
    const summary = JSON.parse(run.out);
    expect(summary.machine.nested).toBe('virt page table');
    expect(summary.report.transfers).toEqual([expect.objectContaining({ pasid: null, verified: true })]);
    expect(summary.report.fault.report).toMatchObject({ endpoint: 16, pasid: null });
    const tree = await vmm(
      'explain',
      '--mode',
      'inline',
      '--plugin',
      plugin,
      '--nested',
      'virt',
      '--iova',
      '0x40000010',
    );
    expect(tree.status).toBe(0);
    expect(tree.out).toMatch(/^IOVA 0x40000010, no PASID, endpoint 16 \(read\), virt page table\n/);
    expect(tree.out).toMatch(/└─ result: 0x40000010 -> 0x[0-9a-f]+010/);
    const withPasid = await vmm(
      'explain',
      '--plugin',
      plugin,
      '--nested',
      'virt',
      '--pasid',
      '1',
      '--iova',
      '0',
    );
    expect(withPasid.status).toBe(2);
    expect(withPasid.err).toMatch(/single page table without PASIDs/);
  });

  it('exits 1 with the reason and the guest stack when the guest fails', async () => {
    const plugin = fileURLToPath(new URL('../testing/plugins/broken-pgtable.ts', import.meta.url));
    const run = await vmm('run', '--mode', 'inline', '--plugin', plugin, '--nested', 'broken');
    expect(run.status).toBe(1);
    expect(run.out).toBe('');
    expect(run.err).toMatch(
      /^vmm: the guest failed: vCPU 0: Error: the broken plugin cannot build a table\n/m,
    );
    expect(run.err).toMatch(/at \S*alloc \(.*broken-pgtable\.ts:/);
    const json = await vmm('run', '--mode', 'inline', '--plugin', plugin, '--nested', 'broken', '--json');
    expect(json.status).toBe(1);
    expect(JSON.parse(json.out)).toEqual({
      ok: false,
      failed: 'guest',
      error: 'vCPU 0: Error: the broken plugin cannot build a table',
    });
  });

  it('exits 1 and names the device when one failed during the run, though the guest got by', async () => {
    const plugin = fileURLToPath(new URL('../testing/plugins/faulty-device.ts', import.meta.url));
    const run = await vmm('run', '--mode', 'inline', '--plugin', plugin, '--pasids', '1', '--json');
    expect(run.status).toBe(1);
    const summary = JSON.parse(run.out);
    expect(summary.ok).toBe(false);
    // The guest's own checks passed: only the host saw the failure.
    expect(summary.report.transfers).toEqual([expect.objectContaining({ verified: true })]);
    expect(summary.problems).toContain("device 'faulty' failed: register file lost its backing store");
    const text = await vmm('run', '--mode', 'inline', '--plugin', plugin, '--pasids', '1');
    expect(text.status).toBe(1);
    expect(text.out).toMatch(
      /\nFAILED:\n {2}- device 'faulty' failed: register file lost its backing store\n/,
    );
  });

  it('says the guest ran out of RAM, and how much each vCPU had, when --cpus leaves too little', async () => {
    const run = await vmm('run', '--mode', 'inline', '--mem', '4M', '--cpus', '64');
    expect(run.status).toBe(1);
    expect(run.err).toMatch(/^vmm: the guest failed: vCPU 0: VmmError: ENOMEM: /);
    expect(run.err).toMatch(
      /\nvmm: the guest ran out of RAM: each of 64 vCPU\(s\) gets 64 KiB; raise --mem or lower --cpus\n$/,
    );
  });

  it('sets the process exit status (a real process, built from sources)', () => {
    const cli = fileURLToPath(new URL('../cli.ts', import.meta.url));
    const child = spawnSync(
      process.execPath,
      ['--conditions=@vmmkit/source', '--import', 'tsx', cli, 'run', '--iommu', 'iommufd'],
      {
        encoding: 'utf8',
        cwd: fileURLToPath(new URL('../..', import.meta.url)),
      },
    );
    expect(child.status).toBe(2);
    expect(child.stderr).toMatch(/--iommu 'iommufd' is not accepted \(accepted: virtio, none\)/);
  });

  it('a real `vmm run` with a worker vCPU ends by itself: the machine left no handle open', () => {
    const cli = fileURLToPath(new URL('../cli.ts', import.meta.url));
    const child = spawnSync(
      process.execPath,
      ['--conditions=@vmmkit/source', '--import', 'tsx', cli, 'run', '--pasids', '2', '--json'],
      // A leaked worker, port or timer would keep the process alive until this kills it.
      { encoding: 'utf8', cwd: fileURLToPath(new URL('../..', import.meta.url)), timeout: 50_000 },
    );
    expect(child.signal).toBeNull();
    expect(child.status).toBe(0);
    expect(JSON.parse(child.stdout)).toMatchObject({
      ok: true,
      machine: { mode: 'worker', iommu: 'virtio' },
    });
  }, 60_000);
});
