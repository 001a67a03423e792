import {
  createContainer,
  type GuestMemory,
  GuestMemory as GuestMemoryClass,
  hex,
  type InterruptLine,
  type Lifecycle,
  lifecycleHooks,
  type MemoryBank,
  type PageRegion,
  runInitPhases,
  TOKENS,
  TypedEmitter,
  VmmError,
} from '@vmmkit/core';
import type { Container, ContainerModule } from 'inversify';
import { MmioBus } from './bus/mmio-bus.js';
import type { DeviceContext, DeviceSpec, PlacedDevice } from './devices.js';
import { type DmaTranslator, identityTranslator } from './dma/translator.js';
import { InterruptLines } from './irq/interrupt-lines.js';
import {
  DEFAULT_MMIO_BASE,
  heapSlices,
  type MemorySpec,
  MmioWindowAllocator,
  type RamBankSpec,
  ramBanksFrom,
} from './memory-map.js';
import type { GuestProgram } from './vcpu/boot.js';
import { createControlBlock, DEFAULT_SPIN } from './vcpu/exit-protocol.js';
import { ExitServer } from './vcpu/exit-server.js';
import type { DeviceNode, VcpuMode } from './vcpu/guest-runtime.js';
import type { VcpuError } from './vcpu/vcpu-error.js';
import {
  type RunningVcpu,
  startInlineVcpu,
  startWorkerVcpu,
  type VcpuRunContext,
} from './vcpu/vcpu-runner.js';

export interface VmOptions {
  /** RAM: a size in bytes (one bank at 2 GiB) or `{ banks: [{ gpa, size }, …] }`. */
  memory: MemorySpec;
  /** Number of vCPUs (default 1); each runs the guest program with its own `runtime.cpu`. */
  cpus?: number;
  /** `worker` (default): vCPUs are worker threads; `inline`: guest code runs on the host thread. */
  mode?: VcpuMode;
  /** Plugins (inversify ContainerModules, e.g. from `definePlugin`). */
  plugins?: readonly ContainerModule[];
  devices?: readonly DeviceSpec[];
  /** Where device windows are placed from (default 0x0a000000). */
  mmioBase?: number;
  /** Number of interrupt lines (default 64). */
  irqLines?: number;
  /** Polls before blocking on exits and interrupts (default 20 000; 0 = always block). */
  spin?: number;
  /** Guest RAM the vCPUs' page allocators share out (default: the first RAM bank). */
  guestHeap?: PageRegion;
  /** Guest `runtime.log` lines; default: dropped (they are still emitted as `log` events). */
  onLog?: (cpu: number, message: string) => void;
}

export interface VmEvents {
  /** A vCPU's program threw or its thread died (the host keeps running). */
  vcpuError: (error: VcpuError) => void;
  /** A device handler threw on an MMIO access (the guest saw 0 / a dropped write). */
  deviceError: (error: unknown, device: string) => void;
  log: (cpu: number, message: string) => void;
  bankAdded: (bank: MemoryBank) => void;
  bankRemoved: (bank: MemoryBank) => void;
}

/** What plugins' lifecycle hooks receive. */
export interface VmContext {
  vm: Vm;
  container: Container;
  memory: GuestMemory;
}

const NO_IRQ: InterruptLine = { raise() {}, lower() {} };

/**
 * A machine: memory banks, an MMIO bus with device windows, interrupt lines, the plugin
 * container and its init phases, and vCPUs that run guest programs. Build it with `createVm`.
 */
export class Vm extends TypedEmitter<VmEvents> {
  readonly memory: GuestMemory;
  readonly bus = new MmioBus();
  readonly irqs: InterruptLines;
  readonly cpus: number;
  readonly mode: VcpuMode;
  readonly spin: number;
  private readonly placed: PlacedDevice[] = [];
  private readonly windows: MmioWindowAllocator;
  private readonly control = createControlBlock();
  private readonly server: ExitServer;
  private readonly heap: PageRegion;
  private lifecycle: Lifecycle<VmContext> | null = null;
  private active: RunningVcpu[] = [];
  private iommu: DmaTranslator | null = null;
  private destroyed = false;
  private readonly forwardAdded = (bank: MemoryBank) => this.onBankChange('add', bank);
  private readonly forwardRemoved = (bank: MemoryBank) => this.onBankChange('remove', bank);

  /** @internal use `createVm`. */
  constructor(
    readonly container: Container,
    banks: readonly RamBankSpec[],
    private readonly options: VmOptions,
  ) {
    super();
    this.cpus = options.cpus ?? 1;
    this.mode = options.mode ?? 'worker';
    this.spin = options.spin ?? DEFAULT_SPIN;
    if (!Number.isInteger(this.cpus) || this.cpus < 1 || this.cpus > 64) {
      throw new VmmError('EINVAL', `cpus must be an integer from 1 to 64, got ${String(options.cpus)}`);
    }
    if (this.mode !== 'inline' && this.mode !== 'worker') {
      throw new VmmError('EINVAL', `mode must be 'inline' or 'worker', got ${String(options.mode)}`);
    }
    if (!Number.isInteger(this.spin) || this.spin < 0) {
      throw new VmmError('EINVAL', `spin must be a non-negative integer, got ${String(options.spin)}`);
    }
    this.memory = new GuestMemoryClass();
    for (const bank of banks) this.memory.addBank({ gpa: bank.gpa, size: bank.size, kind: 'ram' });
    this.heap = options.guestHeap ?? { base: banks[0]!.gpa, size: banks[0]!.size };
    if (!this.memory.isAccessible(this.heap.base, this.heap.size, 'write')) {
      throw new VmmError(
        'EINVAL',
        `guest heap ${hex(this.heap.base)}+${hex(this.heap.size)} must lie in writable RAM`,
      );
    }
    heapSlices(this.heap, this.cpus);
    this.irqs = new InterruptLines(options.irqLines ?? 64);
    this.windows = new MmioWindowAllocator(options.mmioBase ?? DEFAULT_MMIO_BASE);
    this.server = new ExitServer(this.control, this.bus, this.spin);
    this.bus.onHandlerError = (error, handler) => this.emit('deviceError', error, handler.name);
    this.memory.on('bankAdded', this.forwardAdded);
    this.memory.on('bankRemoved', this.forwardRemoved);
  }

  /** Exits and posted doorbells served for worker vCPUs (inline vCPUs call the bus directly). */
  get exitStats(): { exits: number; doorbells: number } {
    return { exits: this.server.exitsServed, doorbells: this.server.doorbellsServed };
  }

  /** The device tree the guest sees. */
  get deviceNodes(): DeviceNode[] {
    return this.placed.map((d) => d.node);
  }

  /** The machine's IOMMU as DMA devices see it: the device that offered one, else identity. */
  translator(): DmaTranslator {
    return this.iommu ?? identityTranslator;
  }

  /** Places a device: allocates its window and interrupt line, builds it, maps it on the bus. */
  async addDevice(spec: DeviceSpec): Promise<PlacedDevice> {
    this.assertUsable('add a device');
    if (this.active.length > 0) {
      throw new VmmError(
        'EBUSY',
        `cannot add device '${spec.name}' while vCPUs run (they hold the device tree)`,
      );
    }
    if (this.placed.some((d) => d.spec.name === spec.name)) {
      throw new VmmError('EEXIST', `a device named '${spec.name}' already exists`);
    }
    const base = this.windows.allocate(spec.mmioSize, spec.gpa);
    // The window is a device bank too: DMA into it fails as it would on hardware, and it
    // cannot overlap RAM (GuestMemory refuses overlapping banks).
    const pages = Math.ceil(spec.mmioSize / 0x1000) * 0x1000;
    this.memory.addBank({ gpa: base, size: pages, kind: 'device' });
    const irqNumber = spec.irq === false ? null : this.irqs.allocate();
    const ctx: DeviceContext = {
      name: spec.name,
      memory: this.memory,
      container: this.container,
      base,
      irq: irqNumber === null ? NO_IRQ : this.irqs.line(irqNumber),
      irqNumber,
      translator: () => this.translator(),
      reportError: (error) => this.emit('deviceError', error, spec.name),
    };
    let placedOnBus = false;
    try {
      const instance = await spec.create(ctx);
      if (instance.mmio.size > pages) {
        throw new VmmError(
          'EINVAL',
          `device '${spec.name}' has a ${instance.mmio.size}-byte register file but asked for a ${spec.mmioSize}-byte window`,
        );
      }
      this.bus.register(base, instance.mmio);
      placedOnBus = true;
      if (instance.translator) {
        if (this.iommu !== null) {
          throw new VmmError(
            'EEXIST',
            `device '${spec.name}' offers an IOMMU but the machine already has one`,
          );
        }
        this.iommu = instance.translator;
      }
      const node: DeviceNode = {
        name: spec.name,
        compatible: spec.compatible,
        base,
        size: spec.mmioSize,
        irq: irqNumber,
        ...(spec.endpoint === undefined ? {} : { endpoint: spec.endpoint }),
        ...(instance.properties ? { properties: { ...instance.properties } } : {}),
      };
      const placed = { spec, node, instance };
      this.placed.push(placed);
      return placed;
    } catch (error) {
      if (placedOnBus) this.bus.unregister(base);
      this.memory.removeBank(base);
      throw error;
    }
  }

  /** Plugs a RAM bank in at run time; host devices and every vCPU learn of it. */
  addMemory(bank: RamBankSpec): MemoryBank {
    this.assertUsable('add memory');
    const [checked] = ramBanksFrom({ banks: [bank] });
    return this.memory.addBank({ gpa: checked!.gpa, size: checked!.size, kind: 'ram' });
  }

  /** Unplugs the RAM bank that starts at `gpa` (not one holding the vCPUs' heap). */
  removeMemory(gpa: number): MemoryBank {
    this.assertUsable('remove memory');
    const bank = this.memory.findBank(gpa);
    if (bank === undefined || bank.gpa !== gpa || bank.kind !== 'ram') {
      throw new VmmError('ENOENT', `no RAM bank starts at ${hex(gpa)}`, { gpa });
    }
    if (this.heap.base < bank.end && bank.gpa < this.heap.base + this.heap.size) {
      throw new VmmError('EBUSY', `RAM bank ${hex(gpa)} holds the guest heap and cannot be removed`);
    }
    return this.memory.removeBank(gpa);
  }

  /**
   * Runs the guest program on every vCPU; resolves with each vCPU's result (by CPU index).
   * When a vCPU fails, the others are stopped and the promise rejects with its `VcpuError`
   * (also emitted as `vcpuError`); the machine stays usable.
   */
  async run(guest: GuestProgram): Promise<unknown[]> {
    this.assertUsable('run');
    if (this.active.length > 0) throw new VmmError('EBUSY', 'the vCPUs are already running a program');
    const moduleUrl = guest.module instanceof URL ? guest.module.href : String(guest.module);
    try {
      // Arguments cross to worker threads by structured clone: refuse what cannot, in both modes
      // alike, before any vCPU starts (it is the caller's mistake, not the guest's).
      structuredClone(guest.args);
    } catch (error) {
      throw new VmmError(
        'EINVAL',
        `guest args must be structured-cloneable (plain data, no functions): ${error instanceof Error ? error.message : String(error)}`,
      );
    }
    const ctx: VcpuRunContext = {
      memory: this.memory,
      bus: this.bus,
      control: this.control,
      irqs: this.irqs.buffer,
      server: this.server,
      devices: this.deviceNodes,
      doorbells: this.placed.flatMap((d) => (d.instance.doorbells ?? []).map((off) => d.node.base + off)),
      spin: this.spin,
      cpuCount: this.cpus,
      guest: { module: moduleUrl, export: guest.export ?? 'default', args: guest.args },
      log: (cpu, message) => {
        this.options.onLog?.(cpu, message);
        this.emit('log', cpu, message);
      },
    };
    const start = this.mode === 'worker' ? startWorkerVcpu : startInlineVcpu;
    if (this.mode === 'worker') this.server.start();
    const vcpus: RunningVcpu[] = [];
    try {
      for (const [cpu, heap] of heapSlices(this.heap, this.cpus).entries()) vcpus.push(start(cpu, heap, ctx));
    } catch (error) {
      // A thread that could not be created: stop what did start, so nothing runs on unattended.
      await Promise.all(vcpus.map((v) => v.stop()));
      await this.server.stop();
      throw error;
    }
    this.active = vcpus;
    let firstFailure: VcpuError | null = null;
    const outcomes = await Promise.all(
      vcpus.map((vcpu) =>
        vcpu.done.then((outcome) => {
          if (!outcome.ok && firstFailure === null) {
            firstFailure = outcome.error;
            // kvmtool stops the machine when a vCPU dies; here the other vCPUs stop, the host lives on.
            for (const other of vcpus) if (other !== vcpu) void other.stop();
          }
          return outcome;
        }),
      ),
    );
    this.active = [];
    await this.server.stop();
    for (const outcome of outcomes) if (!outcome.ok) this.emit('vcpuError', outcome.error);
    if (firstFailure !== null) throw firstFailure;
    return outcomes.map((o) => (o.ok ? o.result : undefined));
  }

  /** Tears the machine down in reverse order of construction; leaves no thread, timer or port behind. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    const failures: unknown[] = [];
    const attempt = async (step: () => unknown) => {
      try {
        await step();
      } catch (error) {
        failures.push(error);
      }
    };
    await attempt(() => Promise.all(this.active.map((v) => v.stop())));
    await attempt(() => this.server.stop());
    await attempt(() => this.lifecycle?.exit());
    for (const device of [...this.placed].reverse()) {
      await attempt(() => device.instance.destroy?.());
      await attempt(() => this.bus.unregister(device.node.base));
    }
    this.placed.length = 0;
    this.iommu = null;
    this.memory.off('bankAdded', this.forwardAdded);
    this.memory.off('bankRemoved', this.forwardRemoved);
    await attempt(() => this.container.unbindAll());
    this.removeAllListeners();
    if (failures.length > 0) throw new AggregateError(failures, `${failures.length} teardown step(s) failed`);
  }

  /** @internal runs the plugins' init phases once the machine is assembled. */
  async init(): Promise<void> {
    this.lifecycle = await runInitPhases(lifecycleHooks<VmContext>(this.container), {
      vm: this,
      container: this.container,
      memory: this.memory,
    });
  }

  /**
   * Every change of the memory map (RAM plugged in or out, device windows placed) reaches the
   * vCPUs (KVM_SET_USER_MEMORY_REGION) and the devices that asked for it — the IOMMU first, so
   * no DMA engine uses a translation into a bank that is gone — then the VM's listeners.
   */
  private onBankChange(op: 'add' | 'remove', bank: MemoryBank): void {
    const change = op === 'add' ? { op, bank: bank.describe() } : { op, gpa: bank.gpa };
    for (const vcpu of this.active) vcpu.postMemoryChange(change);
    if (bank.kind === 'ram') {
      const ordered = [...this.placed].sort(
        (a, b) => Number(b.instance.translator !== undefined) - Number(a.instance.translator !== undefined),
      );
      for (const device of ordered) {
        try {
          device.instance.memoryChanged?.({ op, bank });
        } catch (error) {
          // A device that cannot follow the change is reported; the host and the other devices go on.
          this.emit('deviceError', error, device.spec.name);
        }
      }
    }
    this.emit(op === 'add' ? 'bankAdded' : 'bankRemoved', bank);
  }

  private assertUsable(what: string): void {
    if (this.destroyed) throw new VmmError('EINVAL', `cannot ${what}: the machine was destroyed`);
  }
}

/**
 * Builds a machine: RAM banks, the plugin container (with `TOKENS.GuestMemory` bound), the
 * devices in order, then the plugins' init phases. On any failure, what was built is torn down.
 */
export async function createVm(options: VmOptions): Promise<Vm> {
  const banks = ramBanksFrom(options.memory);
  const container = createContainer(options.plugins ?? []);
  const vm = new Vm(container, banks, options);
  container.bind(TOKENS.GuestMemory).toConstantValue(vm.memory);
  try {
    for (const device of options.devices ?? []) await vm.addDevice(device);
    await vm.init();
  } catch (error) {
    await vm.destroy().catch(() => undefined);
    throw error;
  }
  return vm;
}
