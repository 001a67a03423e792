import { DeviceStatus } from './types.js';

/**
 * The feature registers of the register file (virtio 1.2 §4.2.2): DeviceFeatures and
 * DriverFeatures, each a 64-bit value seen through a 32-bit window its Sel register picks.
 */
export class FeatureRegisters {
  /** DeviceFeaturesSel. */
  deviceSel = 0;
  /** DriverFeaturesSel. */
  driverSel = 0;
  private readonly offeredHalves: Uint32Array;
  private readonly driverHalves = new Uint32Array(2);

  constructor(offered: bigint) {
    this.offeredHalves = new Uint32Array([
      Number(offered & 0xffffffffn),
      Number((offered >> 32n) & 0xffffffffn),
    ]);
  }

  /** DeviceFeatures: the selected half of the offered features. */
  readDeviceFeatures(): number {
    return this.deviceSel < 2 ? this.offeredHalves[this.deviceSel]! : 0;
  }

  /** DriverFeatures, with the transport's Status register in `status`. */
  writeDriverFeatures(status: number, value: number): void {
    // virtio 1.2 §2.2.1: the feature set is fixed once FEATURES_OK was written.
    if ((status & DeviceStatus.FEATURES_OK) === 0 && this.driverSel < 2) {
      this.driverHalves[this.driverSel] = value;
    }
  }

  /** The features the driver wrote, both halves. */
  driverFeatures(): bigint {
    return BigInt(this.driverHalves[0]!) | (BigInt(this.driverHalves[1]!) << 32n);
  }

  /** Device reset: both Sel registers and the driver's features back to 0. */
  clear(): void {
    this.deviceSel = 0;
    this.driverSel = 0;
    this.driverHalves.fill(0);
  }
}
