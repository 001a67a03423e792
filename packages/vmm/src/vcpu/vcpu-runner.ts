import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import { BitmapPageAllocator, type GuestMemory, type PageRegion, VmmError } from '@vmmkit/core';
import type { MmioBus } from '../bus/mmio-bus.js';
import { InterruptWaiter } from '../irq/interrupt-lines.js';
import type { MemoryMapChange, VcpuBoot, VcpuMessage } from './boot.js';
import type { MmioPort } from './exit-channel.js';
import { CTRL_MEMGEN, createExitSlot } from './exit-protocol.js';
import type { ExitServer } from './exit-server.js';
import { createGuestRuntime, type DeviceNode, loadGuestMain } from './guest-runtime.js';
import { workerEntry } from './source-loader.js';
import { VcpuError, type VcpuOutcome } from './vcpu-error.js';

/** What every vCPU of one run shares. */
export interface VcpuRunContext {
  memory: GuestMemory;
  bus: MmioBus;
  control: SharedArrayBuffer;
  irqs: SharedArrayBuffer;
  server: ExitServer;
  devices: DeviceNode[];
  doorbells: number[];
  spin: number;
  cpuCount: number;
  guest: { module: string; export: string; args: unknown };
  log(cpu: number, message: string): void;
}

/** A vCPU being run: resolves when its program returns or fails (never rejects). */
export interface RunningVcpu {
  readonly cpu: number;
  readonly done: Promise<VcpuOutcome>;
  /** Posts a memory-map change (worker vCPUs; inline ones share the host's GuestMemory). */
  postMemoryChange(change: MemoryMapChange): void;
  /** Stops the vCPU now (terminates its thread); resolves once nothing of it is left. */
  stop(): Promise<void>;
}

// In sources this file is src/vcpu/*.ts and the worker src/vcpu-worker.ts; built, tsup puts
// both into dist/ (chunks included), so the worker sits beside this module.
const workerUrl = import.meta.url.endsWith('.ts')
  ? new URL('../vcpu-worker.ts', import.meta.url)
  : new URL('./vcpu-worker.js', import.meta.url);

function toVcpuError(cpu: number, error: unknown): VcpuError {
  const e = error instanceof Error ? error : new Error(String(error));
  return new VcpuError(cpu, `${e.name}: ${e.message}`, e.stack ?? String(e), { cause: error });
}

export function startInlineVcpu(cpu: number, heap: PageRegion, ctx: VcpuRunContext): RunningVcpu {
  const waiter = new InterruptWaiter(ctx.irqs, 0);
  let stopped = false;
  const checkRunning = () => {
    if (stopped) throw new VmmError('EINVAL', `vCPU ${cpu} was stopped`);
  };
  // The guest's MMIO goes straight to the bus, until the vCPU is stopped.
  const port: MmioPort = {
    read: (gpa, size) => {
      checkRunning();
      return ctx.bus.read(gpa, size);
    },
    write: (gpa, size, value) => {
      checkRunning();
      ctx.bus.write(gpa, size, value);
    },
  };
  const run = async (): Promise<VcpuOutcome> => {
    try {
      const runtime = createGuestRuntime({
        cpu,
        cpuCount: ctx.cpuCount,
        mode: 'inline',
        memory: ctx.memory,
        allocator: new BitmapPageAllocator(ctx.memory, heap),
        port,
        devices: ctx.devices,
        args: structuredClone(ctx.guest.args),
        interrupts: {
          count: waiter.count,
          take: (line) => waiter.take(line),
          wait: async (line, timeoutMs) => {
            const got = await waiter.waitAsync(line, timeoutMs, () => stopped);
            checkRunning();
            return got;
          },
        },
        syncMemory: () => {},
        log: (message) => ctx.log(cpu, String(message)),
      });
      const main = await loadGuestMain(ctx.guest.module, ctx.guest.export);
      checkRunning();
      const result = await main(runtime);
      checkRunning();
      return { cpu, ok: true, result: structuredClone(result) };
    } catch (error) {
      return { cpu, ok: false, error: toVcpuError(cpu, error) };
    }
  };
  const done = run();
  return {
    cpu,
    done,
    postMemoryChange: () => {},
    // An inline program shares the host thread: stopping wakes its interrupt waits and fails
    // its next MMIO access, so it unwinds at its next step.
    async stop() {
      stopped = true;
      waiter.wakeAll();
      await done;
    },
  };
}

export function startWorkerVcpu(cpu: number, heap: PageRegion, ctx: VcpuRunContext): RunningVcpu {
  const slot = createExitSlot();
  const { port1: memoryHost, port2: memoryVcpu } = new MessageChannel();
  const boot: VcpuBoot = {
    cpu,
    cpuCount: ctx.cpuCount,
    banks: ctx.memory.describe(),
    heap,
    control: ctx.control,
    slot,
    irqs: ctx.irqs,
    devices: ctx.devices,
    doorbells: ctx.doorbells,
    spin: ctx.spin,
    guest: ctx.guest,
    memoryPort: memoryVcpu,
  };
  ctx.server.attach(slot);
  const worker = new Worker(workerEntry(workerUrl), {
    workerData: boot,
    transferList: [memoryVcpu as unknown as MessagePort],
    name: `vcpu-${cpu}`,
  });
  let settled: VcpuOutcome | null = null;
  let exited = false;
  const control = new Int32Array(ctx.control);

  const done = new Promise<VcpuOutcome>((resolve) => {
    const settle = (outcome: VcpuOutcome) => {
      if (settled === null) settled = outcome;
    };
    worker.on('message', (message: VcpuMessage) => {
      if (message.type === 'log') ctx.log(message.cpu, message.message);
      else if (message.type === 'done') settle({ cpu, ok: true, result: message.result });
      else {
        settle({
          cpu,
          ok: false,
          error: new VcpuError(cpu, `${message.name}: ${message.message}`, message.stack),
        });
      }
    });
    worker.on('error', (error) => settle({ cpu, ok: false, error: toVcpuError(cpu, error) }));
    worker.on('exit', (code) => {
      exited = true;
      ctx.server.detach(slot);
      memoryHost.close();
      settle({
        cpu,
        ok: false,
        error: new VcpuError(
          cpu,
          `vCPU thread exited with code ${code} before its program finished`,
          `vCPU ${cpu} thread exit ${code}`,
        ),
      });
      resolve(settled!);
    });
  });

  return {
    cpu,
    done,
    postMemoryChange(change) {
      if (exited) return;
      memoryHost.postMessage(change);
      Atomics.add(control, CTRL_MEMGEN, 1);
    },
    async stop() {
      if (!exited) await worker.terminate();
      await done;
    },
  };
}
