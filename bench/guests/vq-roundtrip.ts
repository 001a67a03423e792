/**
 * Guest program of [vq-roundtrip]: the virtio-iommu guest driver on a worker vCPU. For each
 * round the host asks for (control word 0), it sends `perRound` requests one at a time —
 * alternately a MAP and the UNMAP of the same page, each its own chain, kick and completion —
 * times them on its own clock and posts the elapsed microseconds (word 2) and "done" (word 1).
 */

import { VIRTIO_IOMMU_DEVICE_ID, VirtioIommuDriver } from '@vmmkit/virtio-iommu';
import type { GuestRuntime } from '@vmmkit/vmm';

export const Ctl = { REQUEST: 0, DONE: 1, ELAPSED_US: 2, FAILURES: 3 } as const;

export default async function vqRoundtrip(rt: GuestRuntime) {
  const { control, perRound, endpoint } = rt.args as {
    control: SharedArrayBuffer;
    perRound: number;
    endpoint: number;
  };
  const ctl = new Int32Array(control);
  const [found] = rt.findVirtioDevices(VIRTIO_IOMMU_DEVICE_ID);
  if (found === undefined) throw new Error('the device tree has no virtio-iommu');
  const wait = rt.completionWait(found.node.irq!);
  const driver = new VirtioIommuDriver({
    mmio: rt.mmio,
    base: found.node.base,
    memory: rt.memory,
    allocator: rt.allocator,
    ...(wait ? { wait } : {}),
  });
  const domain = driver.createDomain();
  driver.attach(endpoint, domain);
  const iova = 0x1_0000_0000;
  const pa = rt.allocator.alloc(0x1000);
  let rounds = 0;
  for (;;) {
    Atomics.wait(ctl, Ctl.REQUEST, 0);
    if (Atomics.exchange(ctl, Ctl.REQUEST, 0) < 0) return rounds;
    let failures = 0;
    const start = performance.now();
    for (let i = 0; i < perRound; i += 2) {
      try {
        driver.map(domain, iova, pa, 0x1000);
        driver.unmap(domain, iova, 0x1000);
      } catch {
        failures++;
      }
    }
    ctl[Ctl.ELAPSED_US] = Math.round((performance.now() - start) * 1000);
    ctl[Ctl.FAILURES] = failures;
    rounds++;
    Atomics.store(ctl, Ctl.DONE, 1);
    Atomics.notify(ctl, Ctl.DONE);
  }
}
