import { createVirtioIommuHarness } from '@vmmkit/virtio-iommu/testing';
import { DEFAULT_SPIN } from '@vmmkit/vmm';
import { PingPong } from '@vmmkit/vmm/testing';
import { alternateRounds, expect, type Measure } from '../measure.js';

const PER_ROUND = 20_000;
const ROUNDS = 9;

export const vqInline: Measure = {
  id: 'vq-inline',
  unit: 'requests/s',
  baseline: 'bare spin-then-wait ping-pong between two threads',
  target: 'none: context for vq-roundtrip',
  method: `The requests of [vq-roundtrip] with no thread hand-off at all: the virtio-iommu guest driver and the device in one thread (the harness's inline vCPU: a QueueNotify write runs the device at once), ${PER_ROUND} requests per round one at a time, alternately \`map()\` and \`unmap()\` of one 4K page. Its ratio to the same ping-pong is about the most [vq-roundtrip] could reach if crossing threads cost nothing (slightly less: inline, every request also pays the QueueNotify write and the notification toggling that the worker's busy polling avoids), so it says how much of that figure is the request's own work. ${ROUNDS} rounds alternated with the ping-pong; medians.`,
  async run() {
    const h = createVirtioIommuHarness({ endpoints: [{ id: 1 }] });
    const driver = h.driver;
    const domain = driver.createDomain();
    driver.attach(1, domain);
    const iova = 0x1_0000_0000;
    const pa = h.guest.scratch.base;
    const round = (): number => {
      const start = performance.now();
      for (let i = 0; i < PER_ROUND; i += 2) {
        driver.map(domain, iova, pa, 0x1000);
        driver.unmap(domain, iova, 0x1000);
      }
      return (PER_ROUND * 1000) / (performance.now() - start);
    };
    const pingPong = new PingPong(DEFAULT_SPIN);
    try {
      const result = await alternateRounds(ROUNDS, () => pingPong.round(PER_ROUND), round);
      expect(h.device.mappingCount === 0, 'every MAP was undone by its UNMAP');
      return result;
    } finally {
      await pingPong.close();
    }
  },
};
