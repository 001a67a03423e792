/** The composed machine runs its guest in both vCPU modes, and the host checks what the guest claims. */
import { crc32 } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { composeMachine, DMA_ENDPOINT, HIGH_RAM } from './machine.js';

let machine: Awaited<ReturnType<typeof composeMachine>> | null = null;
afterEach(async () => {
  await machine?.vm.destroy();
  machine = null;
});

describe.each(['inline', 'worker'] as const)('the composed machine (%s vCPU)', (mode) => {
  it('lays out both RAM banks and every device in the guest device tree', async () => {
    machine = await composeMachine(mode);
    const ram = machine.vm.memory.bankList.filter((b) => b.kind === 'ram');
    expect(ram.map((b) => [b.gpa, b.size])).toEqual([
      [0x8000_0000, 16 * 1024 * 1024],
      [HIGH_RAM.gpa, HIGH_RAM.size],
    ]);
    expect(machine.vm.deviceNodes).toEqual([
      expect.objectContaining({ name: 'viommu', compatible: 'virtio,mmio', irq: 0 }),
      expect.objectContaining({
        name: 'dma0',
        compatible: 'vmmkit,dma-engine',
        endpoint: DMA_ENDPOINT,
        irq: 1,
      }),
      expect.objectContaining({ name: 'mailbox0', compatible: 'example,mailbox', irq: 2 }),
    ]);
  });

  it('copies under each PASID into high RAM, isolates the PASIDs, and talks through the mailbox', async () => {
    machine = await composeMachine(mode);
    const report = await machine.run();
    // What the guest says happened…
    expect(report.transfers.map((t) => [t.pasid, t.bytes, t.verified])).toEqual([
      [1, 5 * 4096 + 17, true],
      [2, 5 * 4096 + 17, true],
    ]);
    // …checked by the host in its own view of RAM: the bytes are in the high bank, and differ per PASID.
    for (const t of report.transfers) {
      expect(t.dst).toBeGreaterThanOrEqual(HIGH_RAM.gpa);
      const copied = machine.vm.memory.read(t.dst, t.bytes);
      expect(Buffer.compare(copied, machine.vm.memory.read(t.src, t.bytes))).toBe(0);
      expect(crc32(copied)).toBe(t.crc32);
    }
    expect(report.transfers[0]!.crc32).not.toBe(report.transfers[1]!.crc32);
    expect(report.isolation).toEqual({
      error: 'translation',
      faultIova: 0x30_0000,
      report: { endpoint: DMA_ENDPOINT, pasid: 2 },
    });
    expect(machine.iommu.device().faultStats.raised).toBe(1);
    expect(machine.dma.engine().stats).toMatchObject({ transfers: 5, errors: 1 });
    expect(machine.mailbox.messages).toEqual([
      `hello from vCPU 0 (${mode})`,
      `PASID 1: 20497 bytes to 0x${report.transfers[0]!.dst.toString(16)}, verified`,
      `PASID 2: 20497 bytes to 0x${report.transfers[1]!.dst.toString(16)}, verified`,
      "PASID 2 reading PASID 1's page: translation",
    ]);
    // Every message was answered with its sequence number, through the interrupt.
    expect(report.replies).toEqual([0, 1, 2, 3]);
  });

  it('tears down without leaving a thread or handle behind', async () => {
    const before = process.getActiveResourcesInfo().length;
    const m = await composeMachine(mode);
    await m.run();
    await m.vm.destroy();
    await new Promise((resolve) => setImmediate(resolve));
    expect(process.getActiveResourcesInfo().length).toBeLessThanOrEqual(before);
    expect(m.vm.bus.windows).toEqual([]);
  });
});
