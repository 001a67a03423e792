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
});
