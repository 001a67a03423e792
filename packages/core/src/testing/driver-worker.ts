/**
 * A guest vCPU thread for cross-thread queue tests: it rebuilds guest memory from the bank
 * descriptors it is given, drives a `DriverQueue` that the host thread serves with a
 * `DeviceQueue`, and checks every answer. It is TypeScript: start it with tsx's loader registered.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { GuestMemory } from '../memory/guest-memory.js';
import { DriverQueue } from '../virtio/driver-queue.js';
import {
  CONTROL_DONE,
  CONTROL_IRQS,
  CONTROL_KICKS,
  CONTROL_READY,
  type DriverWorkerData,
  type DriverWorkerResult,
} from './driver-worker-protocol.js';

const data = workerData as DriverWorkerData;
const memory = GuestMemory.fromBanks(data.banks);
const queue = new DriverQueue(memory, data.layout, data.features);
const control = new Int32Array(data.control);
const errors: string[] = [];
let completed = 0;
let sent = 0;
let kicks = 0;
let stalls = 0;
Atomics.store(control, CONTROL_READY, 1);
Atomics.notify(control, CONTROL_READY);

const slotOf = (token: number) => token % data.layout.size;
const check = (token: unknown, len: number): void => {
  const id = token as number;
  if (id !== completed) errors.push(`request ${id} completed out of order (expected ${completed})`);
  const answer = memory.readU32(data.buffers + 16 * slotOf(id) + 8);
  if (len !== 4 || answer !== (id * 2) >>> 0) errors.push(`request ${id}: len ${len}, answer ${answer}`);
  completed++;
};
// Liveness bound: with working notifications an interrupt wait only times out when a thread is
// descheduled for the whole wait, so many timeouts mean lost notifications: stop instead of hanging.
const MAX_STALLS = 25;
try {
  for (let round = 0; completed < data.requests && round < 10_000_000; round++) {
    if (stalls > MAX_STALLS) {
      errors.push(
        `${stalls} interrupt waits timed out with ${queue.pendingUsed} used buffers pending: lost notifications?`,
      );
      break;
    }
    let added = 0;
    while (sent < data.requests && queue.freeCount >= 2) {
      const slot = slotOf(sent);
      const at = data.buffers + 16 * slot;
      memory.writeU32(at, sent);
      memory.writeU32(at + 4, ~sent >>> 0);
      memory.writeU32(at + 8, 0);
      queue.add([{ addr: at, len: 8 }], [{ addr: at + 8, len: 8 }], sent);
      sent++;
      added++;
    }
    if (queue.kickNeeded()) {
      kicks++;
      Atomics.add(control, CONTROL_KICKS, 1);
      Atomics.notify(control, CONTROL_KICKS);
    }
    const irqs = Atomics.load(control, CONTROL_IRQS);
    if (queue.collect(check) === 0 && added === 0) {
      if (Atomics.wait(control, CONTROL_IRQS, irqs, 200) === 'timed-out') stalls++;
    }
  }
} catch (error) {
  errors.push(`driver failed: ${String(error)}`);
} finally {
  // Always release the device thread, which sleeps on the doorbell until this is set.
  Atomics.store(control, CONTROL_DONE, 1);
  Atomics.add(control, CONTROL_KICKS, 1);
  Atomics.notify(control, CONTROL_KICKS);
}
const result: DriverWorkerResult = { completed, errors: errors.slice(0, 10), kicks, stalls };
parentPort!.postMessage(result);
