import { describe, expect, it } from 'vitest';
import { isVmmError } from '../errors.js';
import {
  createMmioBus,
  createTestMemory,
  TestVirtioDevice,
  type TestVirtioDeviceOptions,
} from '../testing/index.js';
import { VirtioMmioDriver } from './mmio-driver.js';
import { VirtioMmioTransport } from './mmio-transport.js';
import { DeviceStatus, featureBit, type MmioHandler, VirtioFeature } from './types.js';

const RAM = 0x4000_0000;
const MMIO = 0x0a00_0000;
const BUF = RAM + 0x1000;
const EVENT_IDX = featureBit(VirtioFeature.EVENT_IDX);
const INDIRECT = featureBit(VirtioFeature.INDIRECT_DESC);
const V1 = featureBit(VirtioFeature.VERSION_1);

function guest(options: TestVirtioDeviceOptions = {}, withRead16 = true) {
  const t = createTestMemory({ base: RAM, size: 0x20_0000 });
  const device = new TestVirtioDevice(options);
  let irqs = 0;
  const transport = new VirtioMmioTransport(device, {
    memory: t.memory,
    interrupt: {
      raise: () => {
        irqs++;
      },
    },
  });
  const bus = createMmioBus();
  bus.map(MMIO, transport);
  const mmio = withRead16
    ? bus
    : { read8: bus.read8, read32: bus.read32, write8: bus.write8, write32: bus.write32 };
  const driver = new VirtioMmioDriver(mmio, MMIO, t.memory, t.allocator);
  return { ...t, device, transport, bus, driver, irqs: () => irqs };
}

describe('VirtioMmioDriver', () => {
  it('probes a v2 device and nothing elsewhere', () => {
    const g = guest({ deviceId: 23 });
    expect(g.driver.probe()).toBe(23);
    expect(new VirtioMmioDriver(g.bus, MMIO + 0x1000, g.memory, g.allocator).probe()).toBeNull();
    const placeholder = guest({ deviceId: 0 });
    expect(placeholder.driver.probe()).toBeNull();
    const legacy: MmioHandler = {
      name: 'legacy',
      size: 0x200,
      read: (offset) => (offset === 0 ? 0x74726976 : offset === 4 ? 1 : 2),
      write: () => {},
    };
    const bus = createMmioBus();
    bus.map(MMIO, legacy);
    expect(new VirtioMmioDriver(bus, MMIO, g.memory, g.allocator).probe()).toBeNull();
  });

  it('initialises the device in spec order and exchanges a request through the echo device', () => {
    const g = guest({ features: V1 | EVENT_IDX | featureBit(7) });
    const statuses: number[] = [];
    g.transport.on('status', (s) => statuses.push(s));
    const { features, queues } = g.driver.initialize({ wanted: EVENT_IDX | INDIRECT, queueSizes: [8, 4] });
    const { ACKNOWLEDGE: A, DRIVER: D, FEATURES_OK: F, DRIVER_OK: OK } = DeviceStatus;
    expect(statuses).toEqual([0, A, A | D, A | D | F, A | D | F | OK]);
    expect(features).toBe(V1 | EVENT_IDX);
    expect(queues.map((q) => q.size)).toEqual([8, 4]);
    expect(queues[0]!.features).toEqual({ eventIdx: true, indirect: false });
    expect(g.device.activation!.queues.map((q) => q?.layout)).toEqual(queues.map((q) => q.layout));

    g.memory.write(BUF, new TextEncoder().encode('ping'));
    queues[1]!.add([{ addr: BUF, len: 4 }], [{ addr: BUF + 0x100, len: 16 }], 'token');
    expect(queues[1]!.kickNeeded()).toBe(true);
    g.driver.notify(1);
    expect(g.irqs()).toBe(1);
    expect(g.driver.interruptStatus()).toBe(1);
    g.driver.ackInterrupt(1);
    expect(g.driver.interruptStatus()).toBe(0);
    const got: [unknown, number][] = [];
    queues[1]!.collect((token, len) => got.push([token, len]));
    expect(got).toEqual([['token', 4]]);
    expect(new TextDecoder().decode(g.memory.read(BUF + 0x100, 4))).toBe('ping');
  });

  it('fails with a clear VmmError and FAILED when FEATURES_OK does not stick', () => {
    const g = guest({ acceptFeatures: () => false });
    const freeBefore = g.allocator.freeBytes;
    try {
      g.driver.initialize({ wanted: 0n, queueSizes: [8] });
      expect.unreachable();
    } catch (error) {
      expect(isVmmError(error, 'EINVAL')).toBe(true);
      expect((error as Error).message).toMatch(/FEATURES_OK did not stick/);
    }
    expect(g.driver.status() & DeviceStatus.FAILED).toBe(DeviceStatus.FAILED);
    expect(g.allocator.freeBytes).toBe(freeBefore);
  });

  /** Puts a filter between the bus and the transport, as a device with different behaviour. */
  function filtered(g: ReturnType<typeof guest>, filter: Partial<Pick<MmioHandler, 'read' | 'write'>>) {
    const t = g.transport;
    const handler: MmioHandler = {
      name: 'filtered',
      size: t.size,
      read: filter.read ?? ((o, n) => t.read(o, n)),
      write: filter.write ?? ((o, n, v) => t.write(o, n, v)),
    };
    const bus = createMmioBus();
    bus.map(MMIO, handler);
    return new VirtioMmioDriver(bus, MMIO, g.memory, g.allocator);
  }

  it('refuses a device that does not offer VERSION_1', () => {
    const g = guest();
    // DeviceFeatures reads 0 for both selectors: a device with no feature bits at all.
    const driver = filtered(g, { read: (o, n) => (o === 0x010 ? 0 : g.transport.read(o, n)) });
    expect(() => driver.initialize({ wanted: 0n, queueSizes: [8] })).toThrow(
      expect.objectContaining({ code: 'ENOSYS' }),
    );
    expect(g.transport.status & DeviceStatus.FAILED).toBe(DeviceStatus.FAILED);
  });

  it('refuses missing and oversized queues, freeing the rings, and can initialise again', () => {
    const g = guest({ queueMaxSizes: [8] });
    const freeBefore = g.allocator.freeBytes;
    expect(() => g.driver.initialize({ wanted: 0n, queueSizes: [8, 8] })).toThrow(
      expect.objectContaining({ code: 'ENOENT' }),
    );
    expect(g.allocator.freeBytes).toBe(freeBefore);
    expect(() => g.driver.initialize({ wanted: 0n, queueSizes: [16] })).toThrow(/exceeds QueueNumMax 8/);
    expect(() => g.driver.initialize({ wanted: 0n, queueSizes: [6] })).toThrow(/power of two/);
    expect(g.allocator.freeBytes).toBe(freeBefore);
    expect(g.driver.initialize({ wanted: 0n, queueSizes: [8] }).queues).toHaveLength(1);
  });

  it('reports a queue the device did not accept (QueueReady reads back 0)', () => {
    const g = guest();
    const driver = filtered(g, {
      write: (o, n, v) => {
        if (o !== 0x044) g.transport.write(o, n, v);
      },
    });
    const freeBefore = g.allocator.freeBytes;
    expect(() => driver.initialize({ wanted: 0n, queueSizes: [8] })).toThrow(/QueueReady reads 0/);
    expect(g.allocator.freeBytes).toBe(freeBefore);
    expect(g.device.activation).toBeNull();
  });

  it('reads config fields of every width; 64-bit reads retry until ConfigGeneration is stable', () => {
    const config = new Uint8Array(16);
    new DataView(config.buffer).setBigUint64(8, 0x1122_3344_5566_7788n, true);
    new DataView(config.buffer).setUint16(2, 0xbeef, true);
    config[0] = 0x5a;
    new DataView(config.buffer).setUint32(4, 0xcafe_f00d, true);
    for (const withRead16 of [true, false]) {
      const g = guest({ config }, withRead16);
      expect(g.driver.readConfig8(0)).toBe(0x5a);
      expect(g.driver.readConfig16(2)).toBe(0xbeef);
      expect(g.driver.readConfig32(4)).toBe(0xcafe_f00d);
      // The device changes its config (and generation) while the first attempt is under way.
      let reads = 0;
      const read = g.device.readConfig.bind(g.device);
      g.device.readConfig = (offset, size) => {
        if (offset === 8 && reads++ === 0) {
          g.transport.configChanged();
          new DataView(config.buffer).setBigUint64(8, 0x0102_0304_0506_0708n, true);
        }
        return read(offset, size);
      };
      expect(g.driver.readConfig64(8)).toBe(0x0102_0304_0506_0708n);
      expect(reads).toBe(2);
      new DataView(config.buffer).setBigUint64(8, 0x1122_3344_5566_7788n, true);
    }
  });

  it('gives up on a config that never stops changing', () => {
    const g = guest();
    const read = g.device.readConfig.bind(g.device);
    g.device.readConfig = (offset, size) => {
      g.transport.configChanged();
      return read(offset, size);
    };
    expect(() => g.driver.readConfig64(0)).toThrow(expect.objectContaining({ code: 'EBUSY' }));
  });

  it('resets the device and frees its rings', () => {
    const g = guest();
    const freeBefore = g.allocator.freeBytes;
    g.driver.initialize({ wanted: 0n, queueSizes: [8, 8] });
    expect(g.allocator.freeBytes).toBeLessThan(freeBefore);
    g.driver.reset();
    expect(g.driver.status()).toBe(0);
    expect(g.device.resets).toBeGreaterThan(0);
    expect(g.allocator.freeBytes).toBe(freeBefore);
  });
});
