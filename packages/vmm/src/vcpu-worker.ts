/**
 * Entry point of a worker vCPU: rebuilds guest memory from the shared banks, builds the guest
 * runtime over the exit slot and the interrupt words, runs the guest program and reports.
 */

import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { BitmapPageAllocator, GuestMemory } from '@vmmkit/core';
import { InterruptWaiter } from './irq/interrupt-lines.js';
import type { MemoryMapChange, VcpuBoot, VcpuMessage } from './vcpu/boot.js';
import { ExitChannel } from './vcpu/exit-channel.js';
import { CTRL_MEMGEN, SLOT_MEMGEN_SEEN } from './vcpu/exit-protocol.js';
import { createGuestRuntime, loadGuestMain } from './vcpu/guest-runtime.js';

const boot = workerData as VcpuBoot;
const post = (message: VcpuMessage) => parentPort!.postMessage(message);

const memory = GuestMemory.fromBanks(boot.banks);
const control = new Int32Array(boot.control);
const slot = new Int32Array(boot.slot);
let memoryGeneration = Atomics.load(control, CTRL_MEMGEN);
Atomics.store(slot, SLOT_MEMGEN_SEEN, memoryGeneration);

function syncMemory(): void {
  const now = Atomics.load(control, CTRL_MEMGEN);
  if (now === memoryGeneration) return;
  for (let message = receiveMessageOnPort(boot.memoryPort); message; ) {
    const change = message.message as MemoryMapChange;
    if (change.op === 'add') memory.addBank({ ...change.bank, buffer: change.bank.buffer ?? undefined });
    else memory.removeBank(change.gpa);
    message = receiveMessageOnPort(boot.memoryPort);
  }
  memoryGeneration = now;
  Atomics.store(slot, SLOT_MEMGEN_SEEN, now);
}

const channel = new ExitChannel(boot.slot, boot.control, boot.doorbells, boot.spin, syncMemory);
const interrupts = new InterruptWaiter(boot.irqs, boot.spin);
const runtime = createGuestRuntime({
  cpu: boot.cpu,
  cpuCount: boot.cpuCount,
  mode: 'worker',
  memory,
  allocator: new BitmapPageAllocator(memory, boot.heap),
  port: channel,
  devices: boot.devices,
  args: boot.guest.args,
  interrupts: {
    count: interrupts.count,
    take: (line) => interrupts.take(line),
    wait: async (line, timeoutMs) => interrupts.waitBlocking(line, timeoutMs),
    waitBlocking: (line, timeoutMs) => interrupts.waitBlocking(line, timeoutMs),
  },
  syncMemory,
  log: (message) => post({ type: 'log', cpu: boot.cpu, message: String(message) }),
});

try {
  const main = await loadGuestMain(boot.guest.module, boot.guest.export);
  const result = await main(runtime);
  post({ type: 'done', cpu: boot.cpu, result });
} catch (error) {
  const e = error instanceof Error ? error : new Error(String(error));
  post({ type: 'error', cpu: boot.cpu, name: e.name, message: e.message, stack: e.stack ?? String(e) });
} finally {
  boot.memoryPort.close();
}
