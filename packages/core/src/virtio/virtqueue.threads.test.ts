import { describe, expect, it } from 'vitest';
import {
  CONTROL_DONE,
  CONTROL_IRQS,
  CONTROL_KICKS,
  CONTROL_READY,
  type DriverWorkerData,
  type DriverWorkerResult,
} from '../testing/driver-worker-protocol.js';
import { createTestMemory, startTypeScriptWorker } from '../testing/index.js';
import { DeviceQueue } from './device-queue.js';
import { splitQueueBytes, splitQueueLayout } from './layout.js';

/**
 * The driver runs in a worker thread (a vCPU) and the device on this thread, sharing only the
 * SharedArrayBuffer of guest RAM: every request must arrive intact and every answer come back,
 * which depends on the index publication order (Atomics) of both queue sides.
 */
describe('split virtqueue across threads', () => {
  for (const eventIdx of [false, true]) {
    it(`delivers every request and answer between a vCPU worker and the device (EVENT_IDX ${eventIdx})`, async () => {
      const t = createTestMemory({ size: 0x20_0000 });
      const size = 64;
      const layout = splitQueueLayout(t.allocator.alloc(splitQueueBytes(size)), size);
      const features = { eventIdx, indirect: false };
      const requests = 20_000;
      const control = new SharedArrayBuffer(20);
      const words = new Int32Array(control);
      const workerData: DriverWorkerData = {
        banks: t.memory.describe(),
        layout,
        features,
        buffers: t.scratch.base,
        requests,
        control,
      };
      const worker = startTypeScriptWorker(new URL('../testing/driver-worker.ts', import.meta.url), {
        workerData,
      });
      const done = new Promise<DriverWorkerResult>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
      // Wait (bounded) for the driver to have initialised the ring.
      for (let i = 0; i < 2000 && Atomics.load(words, CONTROL_READY) === 0; i++) {
        await new Promise((r) => setTimeout(r, 5));
      }
      expect(Atomics.load(words, CONTROL_READY)).toBe(1);
      const device = new DeviceQueue(t.memory, layout, features);
      const request = new Uint8Array(8);
      const requestView = new DataView(request.buffer);
      const answer = new Uint8Array(4);
      const answerView = new DataView(answer.buffer);
      let served = 0;
      const refused: string[] = [];
      // The device thread: sleep on the doorbell, drain with notifications off, re-enable,
      // look again, interrupt when the driver asks for it.
      for (let round = 0; round < 10_000_000 && Atomics.load(words, CONTROL_DONE) === 0; round++) {
        const doorbell = Atomics.load(words, CONTROL_KICKS);
        let batch = 0;
        do {
          device.enableNotifications(false);
          for (let r = device.pop(); r !== null; r = device.pop()) {
            if (!r.ok) {
              refused.push(r.detail);
              device.pushUsed(r.head, 0);
              continue;
            }
            r.chain.readInto(request);
            answerView.setUint32(0, (requestView.getUint32(0, true) * 2) >>> 0, true);
            device.pushUsed(r.chain.head, r.chain.writeFrom(answer));
            batch++;
          }
          device.enableNotifications(true);
        } while (device.hasAvailable());
        served += batch;
        if (device.needsInterrupt()) {
          Atomics.add(words, CONTROL_IRQS, 1);
          Atomics.notify(words, CONTROL_IRQS);
        }
        if (batch === 0) Atomics.wait(words, CONTROL_KICKS, doorbell, 200);
      }
      const result = await done;
      await worker.terminate();
      expect(refused).toEqual([]);
      expect(result.errors).toEqual([]);
      expect(result.completed).toBe(requests);
      expect(served).toBe(requests);
      expect(device.broken).toBe(false);
    });
  }
});
