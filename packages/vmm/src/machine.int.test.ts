/**
 * The whole machine, as `vmm run` builds it, in both vCPU modes: RAM, a virtio-iommu with the
 * Arm vendor plugin, a PASID-capable DMA engine behind it, and guest programs that drive them
 * over MMIO only. Boot, nested attach, DMA per PASID, faults, hot-plug, a crashing vCPU, teardown.
 */
import { smmuv3Plugin } from '@vmmkit/smmuv3';
import { afterEach, describe, expect, it } from 'vitest';
import { dmaEngine } from './dma/dma-engine.js';
import { resourcesLeftSince } from './testing/resources.js';
import { scratchDevice } from './testing/scratch-device.js';
import { VcpuError } from './vcpu/vcpu-error.js';
import { virtioIommu } from './virtio/virtio-iommu-device.js';
import { createVm, type Vm } from './vm.js';

const MiB = 1024 * 1024;
const ENDPOINT = 0x21;
const guest = (name: string) => new URL(`./testing/guests/${name}.ts`, import.meta.url);

let vm: Vm | null = null;
afterEach(async () => {
  await vm?.destroy();
  vm = null;
});

function parts() {
  return {
    iommu: virtioIommu({ name: 'viommu', endpoints: [{ id: ENDPOINT }], bypass: false }),
    dma: dmaEngine({ name: 'dma0', endpoint: ENDPOINT, pasidBits: 20 }),
  };
}

describe.each(['inline', 'worker'] as const)('a nested machine with %s vCPUs', (mode) => {
  it('boots, attaches a PASID table, DMAs per PASID with verification, and reports faults', async () => {
    const { iommu, dma } = parts();
    vm = await createVm({ memory: 16 * MiB, mode, plugins: [smmuv3Plugin], devices: [iommu, dma] });
    const deviceErrors: unknown[] = [];
    vm.on('deviceError', (e) => deviceErrors.push(e));
    const length = 3 * 4096 + 100;
    const pasids = [1, 2, 5];
    const [report] = (await vm.run({ module: guest('nested-dma'), args: { pasids, length } })) as [
      // biome-ignore lint/suspicious/noExplicitAny: the guest's report is plain data checked below
      any,
    ];
    expect(report.endpoint).toBe(ENDPOINT);
    expect(report.transfers).toHaveLength(3);
    for (const t of report.transfers) {
      expect(t).toMatchObject({ copy: { ok: true, bytesDone: length }, verified: true, crcVerified: true });
      // The host sees the same bytes in RAM: each PASID's copy landed in its own buffer.
      const { src, dst } = report.buffers[t.pasid];
      expect(Buffer.compare(vm.memory.read(dst, length), vm.memory.read(src, length))).toBe(0);
    }
    const { unmapped, readOnly, noContext } = report.faults;
    expect(unmapped.outcome).toMatchObject({
      ok: false,
      error: 'translation',
      bytesDone: 0,
      fault: { iova: 0x7fff_0000, access: 'read' },
    });
    expect(unmapped.reports).toEqual([
      { reason: 'pte-fetch', endpoint: ENDPOINT, pasid: 1, address: 0x7fff_0000 },
    ]);
    expect(readOnly.outcome).toMatchObject({ ok: false, error: 'translation', fault: { access: 'write' } });
    expect(readOnly.reports).toEqual([
      { reason: 'permission', endpoint: ENDPOINT, pasid: 1, address: 0x4000_0000 },
    ]);
    expect(noContext.outcome).toMatchObject({ ok: false, error: 'translation' });
    expect(noContext.reports).toEqual([
      expect.objectContaining({ endpoint: ENDPOINT, pasid: noContext.pasid }),
    ]);
    // The host's own account agrees with the guest's.
    expect(dma.engine().stats).toEqual({ transfers: 9, bytes: 6 * length, errors: 3 });
    expect(iommu.device().faultStats.raised).toBe(3);
    expect(deviceErrors).toEqual([]);
    // The walk the DMA took is there to be explained: PASID 2's source page.
    const steps = iommu.explain(ENDPOINT, 2, 0x4000_0000, 0);
    expect(steps?.at(-1)).toMatchObject({
      label: 'result',
      fields: { pa: `0x${report.buffers[2].src.toString(16)}` },
    });
  });

  it('takes the IOMMU along on hot-unplug: tables in a bank that left fault, whatever was cached', async () => {
    const hot = { gpa: 0x1_0000_0000, size: 2 * MiB };
    const { iommu, dma } = parts();
    const host: string[] = [];
    const machine = await createVm({
      memory: 8 * MiB,
      mode,
      plugins: [smmuv3Plugin],
      devices: [
        iommu,
        dma,
        scratchDevice({
          onDoorbell: (value, ctx) => {
            if (value === 1) machine.addMemory(hot);
            else machine.removeMemory(hot.gpa);
            host.push(`${value === 1 ? 'plugged' : 'unplugged'} ${machine.memory.bankList.length} banks`);
            ctx.irq.raise();
          },
        }),
      ],
    });
    vm = machine;
    const [result] = await machine.run({ module: guest('nested-hotplug'), args: hot });
    expect(result).toMatchObject({
      plugged: true,
      before: { ok: true, bytesDone: 0x1000 },
      copied: true,
      unplugged: true,
      // Without the IOMMU's caches being flushed the copy would still go through here.
      after: { ok: false, error: 'translation', bytesDone: 0 },
      untouched: true,
      reports: [expect.objectContaining({ endpoint: ENDPOINT, pasid: 1 })],
    });
    // RAM + two device windows + the scratch window, with and without the hot bank.
    expect(host).toEqual(['plugged 5 banks', 'unplugged 4 banks']);
    expect(iommu.device().faultStats.raised).toBe(1);
  });

  it('reports a vCPU that throws with its stack; the host and the machine keep going', async () => {
    const { iommu, dma } = parts();
    vm = await createVm({ memory: 16 * MiB, mode, plugins: [smmuv3Plugin], devices: [iommu, dma] });
    const reported: VcpuError[] = [];
    vm.on('vcpuError', (e) => reported.push(e));
    const failure = await vm
      .run({ module: guest('nested-dma'), args: { pasids: [1], length: 4096, crash: true } })
      .catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(VcpuError);
    expect((failure as VcpuError).message).toBe(
      'vCPU 0: TypeError: guest driver bug right after ATTACH_TABLE',
    );
    expect((failure as VcpuError).guestStack).toMatch(/attachFailedInTheGuest[\s\S]*nested-dma\.ts/);
    expect(reported).toEqual([failure]);
    // A new program resets the virtio-iommu and attaches afresh: the machine is still whole.
    const [again] = (await vm.run({ module: guest('nested-dma'), args: { pasids: [3], length: 4096 } })) as [
      { transfers: { verified: boolean }[] },
    ];
    expect(again.transfers).toEqual([expect.objectContaining({ verified: true, crcVerified: true })]);
  });

  it('tears down completely: no worker, port or timer left, and the machine refuses further use', async () => {
    const before = process.getActiveResourcesInfo();
    const { iommu, dma } = parts();
    const machine = await createVm({
      memory: 16 * MiB,
      mode,
      plugins: [smmuv3Plugin],
      devices: [iommu, dma],
    });
    await machine.run({ module: guest('nested-dma'), args: { pasids: [1, 2], length: 8192 } });
    await machine.destroy();
    await machine.destroy();
    await new Promise((resolve) => setImmediate(resolve));
    expect(resourcesLeftSince(before)).toEqual([]);
    expect(machine.bus.windows).toEqual([]);
    await expect(machine.run({ module: guest('nested-dma') })).rejects.toThrow(/the machine was destroyed/);
    expect(() => machine.addMemory({ gpa: 0x1_0000_0000, size: MiB })).toThrow(/the machine was destroyed/);
  });
});
