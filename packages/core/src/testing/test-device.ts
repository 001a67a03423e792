import type { DeviceQueue } from '../virtio/device-queue.js';
import type { PopResult } from '../virtio/queue-api.js';
import { featureBit, type VirtioActivation, type VirtioDevice, VirtioFeature } from '../virtio/types.js';

export interface TestVirtioDeviceOptions {
  deviceId?: number;
  vendorId?: number;
  queueMaxSizes?: readonly number[];
  /** Offered features (default VERSION_1 | EVENT_IDX | INDIRECT_DESC). */
  features?: bigint;
  /** Configuration space contents (default 16 zero bytes). */
  config?: Uint8Array;
  /** Decides FEATURES_OK (default: accept). */
  acceptFeatures?: (features: bigint) => boolean;
}

/**
 * A small virtio device for transport and driver tests. On each notify it drains the queue and
 * answers every chain by copying its readable bytes into its writable part (an "echo"), returning
 * refused chains with length 0. It records what happened so tests can assert on it.
 */
export class TestVirtioDevice implements VirtioDevice<DeviceQueue> {
  readonly name = 'test-echo';
  readonly deviceId: number;
  readonly vendorId: number;
  readonly queueMaxSizes: readonly number[];
  readonly deviceFeatures: bigint;
  readonly config: Uint8Array;
  readonly configWrites: { offset: number; size: number; value: number }[] = [];
  readonly notifications: number[] = [];
  readonly refused: PopResult[] = [];
  activation: VirtioActivation<DeviceQueue> | null = null;
  resets = 0;
  private readonly decide: ((features: bigint) => boolean) | undefined;
  private readonly scratch = new Uint8Array(4096);

  constructor(options: TestVirtioDeviceOptions = {}) {
    this.deviceId = options.deviceId ?? 42;
    this.vendorId = options.vendorId ?? 0x554d4551;
    this.queueMaxSizes = options.queueMaxSizes ?? [16, 16];
    this.deviceFeatures =
      options.features ??
      featureBit(VirtioFeature.VERSION_1) |
        featureBit(VirtioFeature.EVENT_IDX) |
        featureBit(VirtioFeature.INDIRECT_DESC);
    this.config = options.config ?? new Uint8Array(16);
    this.decide = options.acceptFeatures;
  }

  get configSize(): number {
    return this.config.length;
  }

  readConfig(offset: number, size: 1 | 2 | 4): number {
    let value = 0;
    for (let i = size - 1; i >= 0; i--) value = value * 256 + this.config[offset + i]!;
    return value;
  }

  writeConfig(offset: number, size: 1 | 2 | 4, value: number): void {
    this.configWrites.push({ offset, size, value });
  }

  acceptFeatures(features: bigint): boolean {
    return this.decide === undefined ? true : this.decide(features);
  }

  activate(activation: VirtioActivation<DeviceQueue>): void {
    this.activation = activation;
  }

  notify(queueIndex: number): void {
    this.notifications.push(queueIndex);
    const activation = this.activation;
    const queue = activation?.queues[queueIndex];
    if (activation === null || queue === undefined) return;
    do {
      queue.enableNotifications(false);
      for (let r = queue.pop(); r !== null; r = queue.pop()) {
        if (!r.ok) {
          this.refused.push({ ...r });
          queue.pushUsed(r.head, 0);
          continue;
        }
        const chain = r.chain;
        const n = Math.min(chain.readableLength, chain.writableLength, this.scratch.length);
        chain.readInto(this.scratch.subarray(0, n));
        queue.pushUsed(chain.head, chain.writeFrom(this.scratch.subarray(0, n)));
      }
      queue.enableNotifications(true);
    } while (queue.hasAvailable());
    if (queue.needsInterrupt()) activation.notifyUsed(queueIndex);
  }

  reset(): void {
    this.resets++;
    this.activation = null;
  }
}
