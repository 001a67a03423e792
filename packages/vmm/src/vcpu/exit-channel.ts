import type { MmioSize } from '../bus/mmio-bus.js';
import {
  CTRL_WAKE,
  DB_CAPACITY,
  DB_ENTRY_WORDS,
  joinHalves,
  OP_READ,
  OP_WRITE,
  SLOT_ADDR_HI,
  SLOT_ADDR_LO,
  SLOT_DB_HEAD,
  SLOT_DB_RING,
  SLOT_DB_TAIL,
  SLOT_OP,
  SLOT_SIZE,
  SLOT_STATE,
  SLOT_VALUE_HI,
  SLOT_VALUE_LO,
  STATE_IDLE,
  STATE_REQUEST,
  STATE_RESPONSE,
  splitHi,
  splitLo,
} from './exit-protocol.js';

/** How a guest reaches the MMIO bus: directly (inline) or by exiting to the host (worker). */
export interface MmioPort {
  read(gpa: number, size: MmioSize): number;
  write(gpa: number, size: MmioSize, value: number): void;
}

/**
 * The vCPU end of an exit slot. Each MMIO access is one exit: post it, wake the host, spin
 * a little (the host usually answers in well under a microsecond while it is polling), then
 * block with `Atomics.wait`. Writes to registered doorbell addresses are posted and not waited for.
 */
export class ExitChannel implements MmioPort {
  private readonly slot: Int32Array;
  private readonly ctrl: Int32Array;
  private readonly doorbells: Set<number>;
  /** Exits taken (reads and non-doorbell writes) and doorbells posted, for statistics. */
  exits = 0;
  doorbellsPosted = 0;

  constructor(
    slot: SharedArrayBuffer,
    control: SharedArrayBuffer,
    doorbells: Iterable<number>,
    private readonly spin: number,
    /** Runs after every exit returns: the vCPU applies memory-map changes there. */
    private readonly afterExit: () => void = () => {},
  ) {
    this.slot = new Int32Array(slot);
    this.ctrl = new Int32Array(control);
    this.doorbells = new Set(doorbells);
  }

  read(gpa: number, size: MmioSize): number {
    this.exit(OP_READ, gpa, size, 0);
    const slot = this.slot;
    const value =
      size === 8 ? joinHalves(slot[SLOT_VALUE_LO]!, slot[SLOT_VALUE_HI]!) : slot[SLOT_VALUE_LO]! >>> 0;
    Atomics.store(slot, SLOT_STATE, STATE_IDLE);
    this.afterExit();
    return value;
  }

  write(gpa: number, size: MmioSize, value: number): void {
    if (this.doorbells.has(gpa) && this.postDoorbell(gpa, size, value)) return;
    this.exit(OP_WRITE, gpa, size, value);
    Atomics.store(this.slot, SLOT_STATE, STATE_IDLE);
    this.afterExit();
  }

  /** Queues a doorbell write; false when the ring is full (the caller then takes a normal exit). */
  private postDoorbell(gpa: number, size: MmioSize, value: number): boolean {
    const slot = this.slot;
    const tail = slot[SLOT_DB_TAIL]!;
    if (tail - Atomics.load(slot, SLOT_DB_HEAD) >= DB_CAPACITY) return false;
    const at = SLOT_DB_RING + (tail % DB_CAPACITY) * DB_ENTRY_WORDS;
    slot[at] = splitLo(gpa);
    slot[at + 1] = splitHi(gpa);
    slot[at + 2] = size;
    slot[at + 3] = value | 0;
    Atomics.store(slot, SLOT_DB_TAIL, tail + 1);
    this.doorbellsPosted++;
    this.wakeHost();
    return true;
  }

  private exit(op: number, gpa: number, size: MmioSize, value: number): void {
    const slot = this.slot;
    slot[SLOT_OP] = op;
    slot[SLOT_SIZE] = size;
    slot[SLOT_ADDR_LO] = splitLo(gpa);
    slot[SLOT_ADDR_HI] = splitHi(gpa);
    slot[SLOT_VALUE_LO] = splitLo(value);
    slot[SLOT_VALUE_HI] = splitHi(value);
    Atomics.store(slot, SLOT_STATE, STATE_REQUEST);
    this.exits++;
    this.wakeHost();
    for (let i = 0; i < this.spin; i++) {
      if (Atomics.load(slot, SLOT_STATE) === STATE_RESPONSE) return;
    }
    while (Atomics.load(slot, SLOT_STATE) !== STATE_RESPONSE) {
      Atomics.wait(slot, SLOT_STATE, STATE_REQUEST);
    }
  }

  private wakeHost(): void {
    Atomics.add(this.ctrl, CTRL_WAKE, 1);
    Atomics.notify(this.ctrl, CTRL_WAKE);
  }
}
