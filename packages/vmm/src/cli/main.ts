import { readFileSync } from 'node:fs';
import {
  createContainer,
  DmaAccess,
  type IoPgtableRegistry,
  NO_PASID,
  type PasidTableLibrary,
  TOKENS,
} from '@vmmkit/core';
import type { ContainerModule } from 'inversify';
import { buildDemoMachine, DEMO_DMA_ENDPOINT, type DemoMachine } from '../demo/demo-machine.js';
import { describeNested, resolveNested } from '../demo/nested-choice.js';
import type { DemoArgs, DemoReport, NestedChoice } from '../demo/report.js';
import { VcpuError } from '../vcpu/vcpu-error.js';
import { type CliCommand, type ExplainConfig, parseCommandLine, type RunConfig, UsageError } from './args.js';
import { formatBytes, formatSteps, formatSummary, problemsOf, type RunSummary } from './format.js';
import { loadPluginModule, resolvePluginModule } from './plugins.js';

/** Where the CLI writes, and where relative `--plugin` paths start. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  cwd: string;
}

/** Plugins every run loads: the Arm SMMUv3 vendor (`--nested arm`). */
const BUILTIN_PLUGINS = ['@vmmkit/smmuv3'];
/** Bytes each demo DMA moves. */
const TRANSFER_BYTES = 64 * 1024;

const fromSources = import.meta.url.endsWith('.ts');
const demoGuestUrl = fromSources
  ? new URL('../demo-guest.ts', import.meta.url)
  : new URL('./demo-guest.js', import.meta.url);

export const USAGE = `Usage: vmm <command> [options]

Commands:
  run              boot the demo machine: a virtio-iommu, a PASID-capable DMA engine behind it,
                   one verified DMA per PASID and one deliberate fault
  explain          show how one IOVA of one PASID translates, step by step
  help [command]   this text

Options of run (and explain):
  -m, --mem <size>       guest RAM: a number with K, M or G (4M to 16G; default 64M)
  -c, --cpus <n>         vCPUs (1 to 64; default 1)
      --iommu <kind>     virtio | none (default virtio)
      --nested <fmt>     off | arm | a format a plugin registers, as name[:pgtable] (default arm)
      --pasids <n>       PASIDs to attach and DMA through (1 to 64; default 4)
      --plugin <module>  load a plugin module: a path or an installed package (repeatable)
      --mode <where>     worker | inline: where guest code runs (default worker)
      --json             print the summary as JSON
  -h, --help

Options of explain (besides those of run):
      --pasid <P>        the PASID whose tables to walk (1 to --pasids; leave out for a single page table)
      --iova <A>         the IOVA, decimal or 0x-hex; the demo maps each PASID's buffers from 0x40000000

Exit status: 0 success, 1 the machine or the guest failed, 2 invalid arguments.
`;

function version(): string {
  for (const path of ['../../package.json', '../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(path, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === '@vmmkit/vmm') return pkg.version ?? 'unknown';
    } catch {
      // try the next layout (sources or dist)
    }
  }
  return 'unknown';
}

interface Prepared {
  pluginModules: string[];
  plugins: ContainerModule[];
  nested: NestedChoice;
}

/** Loads plugins and checks `--nested` against what they register: still argument checking (exit 2). */
async function prepare(config: RunConfig | ExplainConfig, cwd: string): Promise<Prepared> {
  const pluginModules: string[] = [];
  const plugins: ContainerModule[] = [];
  for (const spec of BUILTIN_PLUGINS) {
    const loaded = await loadPluginModule(spec).catch(() => null);
    if (loaded) {
      pluginModules.push(spec);
      plugins.push(...loaded.plugins);
    }
  }
  for (const spec of config.plugins) {
    const loaded = await loadPluginModule(resolvePluginModule(spec, cwd), spec);
    pluginModules.push(loaded.url);
    // A plugin named twice (or a built-in named again) would register its formats twice.
    for (const plugin of loaded.plugins) if (!plugins.includes(plugin)) plugins.push(plugin);
  }
  if (config.iommu === 'none') return { pluginModules, plugins, nested: { kind: 'off' } };
  const container = createContainer(plugins);
  const nested = resolveNested(
    config.nested,
    container.get<PasidTableLibrary>(TOKENS.PasidTableLibrary),
    container.get<IoPgtableRegistry>(TOKENS.IoPgtableRegistry),
  );
  if (typeof nested === 'string') throw new UsageError(nested);
  if (config.pasidsGiven && nested.kind !== 'pasid-table') {
    throw new UsageError(`--pasids needs a PASID table; --nested ${config.nested} is a single page table`);
  }
  return { pluginModules, plugins, nested };
}

async function runDemo(
  config: RunConfig | ExplainConfig,
  prepared: Prepared,
  io: CliIo,
): Promise<{ machine: DemoMachine; report: DemoReport; deviceErrors: string[] }> {
  const machine = await buildDemoMachine({
    mem: config.mem,
    cpus: config.cpus,
    mode: config.mode,
    iommu: config.iommu,
    plugins: prepared.plugins,
    ...(config.json ? {} : { onLog: (cpu: number, message: string) => io.err(`[vcpu ${cpu}] ${message}\n`) }),
  });
  const args: DemoArgs = {
    iommu: config.iommu,
    nested: prepared.nested,
    pasids: config.pasids,
    pluginModules: prepared.pluginModules,
    transferBytes: TRANSFER_BYTES,
    keepAttached: config.command === 'explain',
  };
  // A device that threw during the run was hidden from the guest (it read 0), not from the user.
  const deviceErrors: string[] = [];
  machine.vm.on('deviceError', (error, device) => {
    deviceErrors.push(`device '${device}' failed: ${error instanceof Error ? error.message : String(error)}`);
  });
  try {
    const [report] = (await machine.vm.run({ module: demoGuestUrl, args })) as [DemoReport];
    return { machine, report, deviceErrors };
  } catch (error) {
    await machine.vm.destroy();
    throw error;
  }
}

async function run(config: RunConfig, io: CliIo): Promise<number> {
  const prepared = await prepare(config, io.cwd);
  const { machine, report, deviceErrors } = await runDemo(config, prepared, io);
  try {
    const { vm } = machine;
    const dma = machine.dma().stats;
    const problems = [...problemsOf(report), ...new Set(deviceErrors)];
    const summary: RunSummary = {
      ok: problems.length === 0,
      machine: {
        mem: config.mem,
        cpus: config.cpus,
        mode: config.mode,
        iommu: config.iommu,
        nested: config.iommu === 'none' ? 'n/a' : describeNested(prepared.nested),
      },
      report,
      stats: {
        exits: vm.exitStats.exits,
        doorbells: vm.exitStats.doorbells,
        unclaimedMmio: vm.bus.stats.unclaimedReads + vm.bus.stats.unclaimedWrites,
        dma: { ...dma },
        iommu: machine.iommu ? { faultsRaised: machine.iommu().faultStats.raised } : null,
      },
      problems,
    };
    io.out(config.json ? `${JSON.stringify(summary, null, 2)}\n` : formatSummary(summary));
    return summary.ok ? 0 : 1;
  } finally {
    await machine.vm.destroy();
  }
}

async function explain(config: ExplainConfig, io: CliIo): Promise<number> {
  const prepared = await prepare(config, io.cwd);
  if (prepared.nested.kind === 'off') {
    throw new UsageError(
      'vmm explain shows a nested stage-1 walk: it needs --iommu virtio and a nested format',
    );
  }
  const withPasids = prepared.nested.kind === 'pasid-table';
  if (withPasids && (config.pasid === null || config.pasid < 1 || config.pasid > config.pasids)) {
    throw new UsageError(
      `${config.pasid === null ? 'a PASID table needs --pasid' : `--pasid ${config.pasid}`}: the demo attaches PASIDs 1 to ${config.pasids} (see --pasids)`,
    );
  }
  if (!withPasids && config.pasid !== null) {
    throw new UsageError(
      `--pasid ${config.pasid}: --nested ${config.nested} is a single page table without PASIDs (leave --pasid out)`,
    );
  }
  if (config.iova > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new UsageError(`--iova ${config.iova}: nested page-table IOVAs are at most 52 bits`);
  }
  const { machine } = await runDemo(config, prepared, io);
  try {
    const steps = machine.iommuSpec?.explain(
      DEMO_DMA_ENDPOINT,
      config.pasid ?? NO_PASID,
      Number(config.iova),
      DmaAccess.READ,
    );
    if (!steps) {
      io.err(`vmm explain: endpoint ${DEMO_DMA_ENDPOINT} holds no nested table after the demo setup\n`);
      return 1;
    }
    const title = `IOVA 0x${config.iova.toString(16)}, ${config.pasid === null ? 'no PASID' : `PASID ${config.pasid}`}, endpoint ${DEMO_DMA_ENDPOINT} (read), ${describeNested(prepared.nested)}`;
    io.out(
      config.json
        ? `${JSON.stringify({ iova: `0x${config.iova.toString(16)}`, pasid: config.pasid, steps }, null, 2)}\n`
        : formatSteps(title, steps),
    );
    return 0;
  } finally {
    await machine.vm.destroy();
  }
}

/** The `vmm` command: returns the exit status (0 ok, 1 machine/guest failure, 2 usage). */
export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  let command: CliCommand | null = null;
  try {
    command = parseCommandLine(argv);
    switch (command.command) {
      case 'help':
        io.out(USAGE);
        return 0;
      case 'version':
        io.out(`vmm ${version()}\n`);
        return 0;
      case 'run':
        return await run(command, io);
      case 'explain':
        return await explain(command, io);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`vmm: ${error.message}\nRun 'vmm --help' for the accepted options.\n`);
      return 2;
    }
    // With --json, a script reading stdout learns of the failure there too (details stay on stderr).
    if (command !== null && 'json' in command && command.json) {
      const guest = error instanceof VcpuError;
      const why = error instanceof Error ? error.message : String(error);
      io.out(`${JSON.stringify({ ok: false, failed: guest ? 'guest' : 'machine', error: why }, null, 2)}\n`);
    }
    if (error instanceof VcpuError) {
      io.err(`vmm: the guest failed: ${error.message}\n${error.guestStack}\n`);
      if (command !== null && 'mem' in command && /ENOMEM/.test(error.message)) {
        // Each vCPU allocates from an equal slice of RAM and the demo runs on vCPU 0 alone.
        const slice = formatBytes(Math.floor(command.mem / command.cpus / 4096) * 4096);
        io.err(
          `vmm: the guest ran out of RAM: each of ${command.cpus} vCPU(s) gets ${slice}; raise --mem or lower --cpus\n`,
        );
      }
      return 1;
    }
    const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
    io.err(`vmm: the machine failed: ${message}\n`);
    return 1;
  }
}
