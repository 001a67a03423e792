import type { MessagePort } from 'node:worker_threads';
import type { BankDescriptor, PageRegion } from '@vmmkit/core';
import type { DeviceNode } from './guest-runtime.js';

/** Which guest program a vCPU runs. */
export interface GuestProgram {
  /** Module URL (file: URL or href); `.ts` modules are loaded through tsx in workers. */
  module: string | URL;
  /** Export to call; `default` when omitted. */
  export?: string;
  /** Handed to the program as `runtime.args`; must be structured-cloneable. */
  args?: unknown;
}

/** Everything a worker vCPU needs to start, posted as `workerData` (buffers are shared, not copied). */
export interface VcpuBoot {
  cpu: number;
  cpuCount: number;
  banks: BankDescriptor[];
  heap: PageRegion;
  control: SharedArrayBuffer;
  slot: SharedArrayBuffer;
  irqs: SharedArrayBuffer;
  devices: DeviceNode[];
  doorbells: number[];
  spin: number;
  guest: { module: string; export: string; args: unknown };
  /** Memory-map changes arrive here; the vCPU drains it synchronously when MEMGEN moves. */
  memoryPort: MessagePort;
}

/** A memory-map change posted to vCPUs (KVM_SET_USER_MEMORY_REGION in spirit). */
export type MemoryMapChange = { op: 'add'; bank: BankDescriptor } | { op: 'remove'; gpa: number };

/** Messages from a worker vCPU to the host. */
export type VcpuMessage =
  | { type: 'log'; cpu: number; message: string }
  | { type: 'done'; cpu: number; result: unknown }
  | { type: 'error'; cpu: number; name: string; message: string; stack: string };
