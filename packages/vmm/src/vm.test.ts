import { isVmmError } from '@vmmkit/core';
import { afterEach, describe, expect, it } from 'vitest';
import { SCRATCH_ID, scratchDevice } from './testing/index.js';
import { resourcesLeftSince } from './testing/resources.js';
import { VcpuError } from './vcpu/vcpu-error.js';
import { createVm, type Vm } from './vm.js';

const guest = (name: string) => new URL(`./testing/guests/${name}.ts`, import.meta.url);
const MiB = 1024 * 1024;

let vm: Vm | null = null;
afterEach(async () => {
  await vm?.destroy();
  vm = null;
});

describe.each(['inline', 'worker'] as const)('a machine with %s vCPUs', (mode) => {
  it('routes exits, posted doorbells and interrupts between guest and devices, and shares RAM', async () => {
    const logs: string[] = [];
    vm = await createVm({
      memory: { banks: [{ gpa: 0x4000_0000, size: 4 * MiB }] },
      cpus: 2,
      mode,
      devices: [scratchDevice({ name: 'scratch0' }), scratchDevice({ name: 'scratch1' })],
      onLog: (cpu, message) => logs.push(`${cpu}:${message}`),
    });
    const results = (await vm.run({ module: guest('exits') })) as Record<string, unknown>[];
    expect(results).toHaveLength(2);
    for (const r of results) {
      expect(r.mode).toBe(mode);
      expect(r.id).toBe(SCRATCH_ID);
      expect(r.unclaimed).toBe(0);
      expect(r.interrupted).toBe(true);
      // Each vCPU's allocator hands out its own slice of RAM, visible to the host.
      expect(vm.memory.readU32(r.page as number)).toBe(0x600df00d);
    }
    // Each vCPU rang its own device's doorbell 100 times without waiting; the read that
    // followed was served after all of them, in order.
    for (const [cpu, r] of results.entries()) {
      expect(r).toMatchObject({ doorbells: 100, lastDoorbell: 100, scratch: 0xcafe0000 + cpu });
    }
    expect(results[0]!.page).not.toBe(results[1]!.page);
    // Worker vCPUs post doorbell writes (a full ring falls back to an exit); their 8 other
    // MMIO accesses each are exits. Inline vCPUs call the bus directly.
    const { doorbells, exits } = vm.exitStats;
    expect(doorbells + exits).toBe(mode === 'worker' ? 2 * (100 + 8) : 0);
    if (mode === 'worker') expect(doorbells).toBeGreaterThanOrEqual(100);
    expect(vm.bus.stats.unclaimedReads).toBe(2);
    expect(vm.bus.stats.unclaimedWrites).toBe(2);
    expect(logs.sort()).toEqual(['0:cpu 0 done', '1:cpu 1 done']);
  });

  it('tells every vCPU about RAM plugged in and out at run time', async () => {
    const hotGpa = 0x1_0000_0000;
    const hostEvents: string[] = [];
    vm = await createVm({
      memory: 2 * MiB,
      mode,
      // No polling: every exit and interrupt wait takes the blocking Atomics.wait path.
      spin: 0,
      devices: [
        scratchDevice({
          onDoorbell: (value, ctx) => {
            if (value === 1) vm!.addMemory({ gpa: hotGpa, size: 64 * 1024 });
            else {
              hostEvents.push(`guest wrote ${vm!.memory.readU32(hotGpa + 0x10).toString(16)}`);
              vm!.removeMemory(hotGpa);
            }
            ctx.irq.raise();
          },
        }),
      ],
    });
    vm.memory.on('bankAdded', (b) => hostEvents.push(`added ${b.gpa.toString(16)}`));
    vm.memory.on('bankRemoved', (b) => hostEvents.push(`removed ${b.gpa.toString(16)}`));
    const [result] = await vm.run({ module: guest('hotplug'), args: { gpa: hotGpa } });
    expect(result).toEqual({
      visibleBefore: false,
      visibleAfterPlug: true,
      visibleAfterUnplug: false,
      added: [hotGpa],
      removed: [hotGpa],
    });
    expect(hostEvents).toEqual(['added 100000000', 'guest wrote b0b0b0b', 'removed 100000000']);
  });

  it('reports a guest exception with its stack and keeps the host and machine usable', async () => {
    vm = await createVm({ memory: MiB, mode, devices: [scratchDevice()] });
    const reported: VcpuError[] = [];
    vm.on('vcpuError', (e) => reported.push(e));
    const failure = await vm.run({ module: guest('crash'), args: { how: 'throw' } }).catch((e) => e);
    expect(failure).toBeInstanceOf(VcpuError);
    expect(failure.cpu).toBe(0);
    expect(failure.message).toContain('RangeError: guest driver tripped over a bad descriptor');
    expect(failure.guestStack).toContain('deepInsideTheGuest');
    expect(failure.guestStack).toContain('crash.ts');
    expect(reported).toEqual([failure]);
    const unclonable = await vm.run({ module: guest('crash'), args: { how: 'unclonable' } }).catch((e) => e);
    expect(unclonable).toBeInstanceOf(VcpuError);
    expect(unclonable.message).toMatch(/could not be cloned/);
    await expect(vm.run({ module: guest('crash'), args: { how: 'fine' } })).resolves.toEqual(['fine']);
    // Arguments that cannot cross to a thread are the caller's mistake, refused alike in both modes.
    const errorsBefore = reported.length;
    const badArgs = await vm
      .run({ module: guest('crash'), args: { how: 'fine', f: () => 1 } })
      .catch((e) => e);
    expect(isVmmError(badArgs, 'EINVAL')).toBe(true);
    expect(badArgs.message).toMatch(/guest args must be structured-cloneable/);
    expect(reported).toHaveLength(errorsBefore);
    await expect(vm.run({ module: guest('crash'), args: { how: 'fine' } })).resolves.toEqual(['fine']);
  });

  it('stops a vCPU parked on an interrupt when the machine is destroyed, leaving nothing behind', async () => {
    const before = process.getActiveResourcesInfo();
    let parked!: () => void;
    const isParked = new Promise<void>((resolve) => {
      parked = resolve;
    });
    const machine = await createVm({
      memory: MiB,
      mode,
      devices: [scratchDevice({ onDoorbell: () => parked() })],
    });
    const running = machine.run({ module: guest('park') }).catch((e) => e);
    await isParked;
    if (mode === 'worker') expect(process.getActiveResourcesInfo()).toContain('MessagePort');
    await machine.destroy();
    const outcome = await running;
    expect(outcome).toBeInstanceOf(VcpuError);
    await new Promise((resolve) => setImmediate(resolve));
    expect(resourcesLeftSince(before)).toEqual([]);
  });
});

describe('worker vCPUs', () => {
  it('reports a vCPU thread that exits early', async () => {
    vm = await createVm({ memory: MiB, mode: 'worker' });
    const failure = await vm.run({ module: guest('crash'), args: { how: 'exit' } }).catch((e) => e);
    expect(failure).toBeInstanceOf(VcpuError);
    expect(failure.message).toContain('exited with code 3');
  });

  it('leaves no worker, port, timer or handle behind after destroy', async () => {
    const before = process.getActiveResourcesInfo();
    const machine = await createVm({ memory: MiB, mode: 'worker', devices: [scratchDevice()] });
    await machine.run({ module: guest('exits') });
    await machine.destroy();
    await new Promise((resolve) => setImmediate(resolve));
    expect(resourcesLeftSince(before)).toEqual([]);
  });
});

describe('createVm', () => {
  it('refuses a bad configuration with a message that says what is accepted', async () => {
    await expect(createVm({ memory: 1000 })).rejects.toThrow(/multiple of 4 KiB/);
    await expect(createVm({ memory: MiB, cpus: 0 })).rejects.toThrow(/cpus must be an integer from 1 to 64/);
    await expect(createVm({ memory: MiB, mode: 'fork' as never })).rejects.toThrow(/'inline' or 'worker'/);
    const clash = await createVm({
      memory: { banks: [{ gpa: 0x0a00_0000, size: MiB }] },
      devices: [scratchDevice()],
    }).catch((e) => e);
    expect(isVmmError(clash, 'EEXIST')).toBe(true);
  });

  it('refuses hot-plug requests it cannot honour with typed errors, and leaves the map unchanged', async () => {
    vm = await createVm({ memory: MiB, mode: 'inline', devices: [scratchDevice()] });
    const banks = () => vm!.memory.bankList.map((b) => b.gpa);
    const before = banks();
    const refused = (f: () => unknown) => {
      try {
        f();
      } catch (error) {
        return isVmmError(error) ? error.message : String(error);
      }
      return 'accepted';
    };
    expect(refused(() => vm!.addMemory({ gpa: 0x8000_0000 + 0x8_0000, size: MiB }))).toMatch(/^EEXIST/);
    expect(refused(() => vm!.addMemory({ gpa: 0x0a00_0000, size: 0x1000 }))).toMatch(/^EEXIST/);
    expect(refused(() => vm!.addMemory({ gpa: 0x1_0000_0800, size: MiB }))).toMatch(
      /^EINVAL: .*4 KiB aligned/,
    );
    expect(refused(() => vm!.addMemory({ gpa: 0x1_0000_0000, size: 100 }))).toMatch(
      /^EINVAL: .*multiple of 4 KiB/,
    );
    expect(refused(() => vm!.removeMemory(0x8000_0000))).toMatch(/^EBUSY: .*holds the guest heap/);
    expect(refused(() => vm!.removeMemory(0x1_0000_0000))).toMatch(/^ENOENT: no RAM bank starts at/);
    expect(refused(() => vm!.removeMemory(0x0a00_0000))).toMatch(/^ENOENT/);
    expect(banks()).toEqual(before);
    const changes: string[] = [];
    vm.on('bankAdded', (b) => changes.push(`+${b.gpa.toString(16)}`));
    vm.on('bankRemoved', (b) => changes.push(`-${b.gpa.toString(16)}`));
    vm.addMemory({ gpa: 0x1_0000_0000, size: MiB });
    vm.removeMemory(0x1_0000_0000);
    expect(changes).toEqual(['+100000000', '-100000000']);
  });

  it('places devices in page-aligned windows with their own lines and refuses duplicates', async () => {
    vm = await createVm({
      memory: MiB,
      mode: 'inline',
      devices: [scratchDevice({ name: 'a' }), scratchDevice({ name: 'b' })],
    });
    const [a, b] = vm.deviceNodes;
    expect(a).toMatchObject({ name: 'a', base: 0x0a00_0000, irq: 0 });
    expect(b).toMatchObject({ name: 'b', base: 0x0a00_1000, irq: 1 });
    await expect(vm.addDevice(scratchDevice({ name: 'a' }))).rejects.toThrow(/already exists/);
    // A device window is a device bank: DMA-style accesses to it are refused.
    expect(vm.memory.accessFault(0x0a00_0000, 4)?.reason).toBe('device');
  });

  it('runs plugin init phases and their exits in reverse on destroy', async () => {
    const { definePlugin, InitPhase } = await import('@vmmkit/core');
    const order: string[] = [];
    const plugin = definePlugin('probe', (r) => {
      r.lifecycle({
        phase: InitPhase.LATE,
        init: () => void order.push('late'),
        exit: () => void order.push('exit late'),
      });
      r.lifecycle({
        phase: InitPhase.DEVICE,
        init: () => void order.push('device'),
        exit: () => void order.push('exit device'),
      });
    });
    const machine = await createVm({ memory: MiB, mode: 'inline', plugins: [plugin] });
    expect(order).toEqual(['device', 'late']);
    await machine.destroy();
    expect(order).toEqual(['device', 'late', 'exit late', 'exit device']);
  });
});
