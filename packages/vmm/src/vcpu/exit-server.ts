import type { MmioHandler } from '@vmmkit/core';
import type { MmioBus, MmioSize } from '../bus/mmio-bus.js';
import { waitAsync } from './atomics.js';
import * as P from './exit-protocol.js';

// Module-local copies of the protocol constants: the serving loop must not pay for imported
// bindings turned into property reads by a bundler or test runner.
const { CTRL_WAKE, DB_CAPACITY, DB_ENTRY_WORDS, OP_READ, SLOT_ADDR_HI, SLOT_ADDR_LO, SLOT_DB_HEAD } = P;
const { SLOT_DB_RING, SLOT_DB_TAIL, SLOT_OP, SLOT_SIZE, SLOT_STATE, SLOT_VALUE_HI, SLOT_VALUE_LO } = P;
const { STATE_REQUEST, STATE_RESPONSE, joinHalves, splitHi, splitLo } = P;

function validSize(size: number): boolean {
  return size === 4 || size === 1 || size === 2 || size === 8;
}

/** Exits served before the server yields to the event loop even when more are waiting. */
const BATCH_BEFORE_YIELD = 4096;

/**
 * The host end of every vCPU's exit slot: the `KVM_RUN` return path. Waits on the VM's wake
 * word without blocking the event loop (`Atomics.waitAsync`), serves doorbells then exits
 * against the MMIO bus, and keeps polling for a short while after each one because a guest
 * that just exited usually exits again soon (perf-limits §5: hybrid round trips ~0.3 µs,
 * blocking ones ~60 µs on these VMs).
 */
export class ExitServer {
  private readonly ctrl: Int32Array;
  private slots: Int32Array[] = [];
  /** Handlers the loop busy-polls while it spins (virtio-mmio transports: their request queues). */
  private pollers: MmioHandler[] = [];
  private running = false;
  private loop: Promise<void> | null = null;
  exitsServed = 0;
  doorbellsServed = 0;
  /** Exits and doorbells whose access width was not 1, 2, 4 or 8 (answered 0 / dropped). */
  malformed = 0;

  constructor(
    control: SharedArrayBuffer,
    private readonly bus: MmioBus,
    private readonly spin: number,
  ) {
    this.ctrl = new Int32Array(control);
  }

  attach(slot: SharedArrayBuffer): void {
    this.slots.push(new Int32Array(slot));
  }

  detach(slot: SharedArrayBuffer): void {
    this.slots = this.slots.filter((s) => s.buffer !== slot);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.pollers = this.bus.windows.map((w) => w.handler).filter((h) => h.poll !== undefined);
    this.loop = this.serve();
  }

  /** Stops serving; resolves once the loop has left its wait. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    Atomics.add(this.ctrl, CTRL_WAKE, 1);
    Atomics.notify(this.ctrl, CTRL_WAKE);
    await this.loop;
    this.loop = null;
  }

  /**
   * Serves everything pending once: posted doorbells, then the polled devices, then exits — so
   * an exit sees the effect of everything its vCPU posted or queued before it. Returns how many
   * items were served.
   */
  poll(): number {
    let served = 0;
    const slots = this.slots;
    for (let i = 0; i < slots.length; i++) served += this.drainDoorbells(slots[i]!);
    served += this.pollDevices();
    for (let i = 0; i < slots.length; i++) {
      const slot = slots[i]!;
      if (Atomics.load(slot, SLOT_STATE) === STATE_REQUEST) {
        this.serveExit(slot);
        served++;
      }
    }
    return served;
  }

  private pollDevices(): number {
    const pollers = this.pollers;
    let served = 0;
    for (let i = 0; i < pollers.length; i++) served += pollers[i]!.poll!();
    return served;
  }

  /**
   * Busy polling (vhost's busy_poll): while the loop is awake, a virtio device keeps the
   * notifications of its request queues suppressed and the loop watches the rings itself, so
   * a driver adds requests without a QueueNotify doorbell. Before blocking, the loop hands the
   * queues back to notifications; what arrived meanwhile is served and keeps it awake.
   */
  private startPolling(): void {
    for (const poller of this.pollers) poller.startPolling?.();
  }

  private stopPolling(): number {
    let served = 0;
    for (const poller of this.pollers) served += poller.stopPolling?.() ?? 0;
    return served;
  }

  private async serve(): Promise<void> {
    const ctrl = this.ctrl;
    let sinceYield = 0;
    this.startPolling();
    while (this.running) {
      const seen = Atomics.load(ctrl, CTRL_WAKE);
      const served = this.poll();
      if (served > 0) {
        sinceYield += served;
        if (sinceYield >= BATCH_BEFORE_YIELD) {
          sinceYield = 0;
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
        continue;
      }
      let changed = false;
      for (let i = 0; i < this.spin; i++) {
        if (Atomics.load(ctrl, CTRL_WAKE) !== seen) {
          changed = true;
          break;
        }
        const polled = this.pollDevices();
        if (polled > 0) {
          sinceYield += polled;
          changed = true;
          break;
        }
      }
      if (changed) continue;
      // About to block: the polled queues go back to notifications first.
      if (this.stopPolling() > 0) {
        this.startPolling();
        continue;
      }
      sinceYield = 0;
      const waiting = waitAsync(ctrl, CTRL_WAKE, seen);
      if (waiting.async) await waiting.value;
      this.startPolling();
    }
    this.stopPolling();
  }

  private drainDoorbells(slot: Int32Array): number {
    const tail = Atomics.load(slot, SLOT_DB_TAIL);
    let head = slot[SLOT_DB_HEAD]!;
    // Bound the walk by the ring size: a corrupted tail cannot make the host loop forever.
    const count = Math.min(tail - head, DB_CAPACITY);
    if (count <= 0) return 0;
    for (let n = 0; n < count; n++) {
      const at = SLOT_DB_RING + (head % DB_CAPACITY) * DB_ENTRY_WORDS;
      const gpa = joinHalves(slot[at]!, slot[at + 1]!);
      const size = slot[at + 2]! as MmioSize;
      if (validSize(size)) this.bus.write(gpa, size, slot[at + 3]! >>> 0);
      else this.malformed++;
      head++;
    }
    Atomics.store(slot, SLOT_DB_HEAD, head);
    this.doorbellsServed += count;
    return count;
  }

  private serveExit(slot: Int32Array): void {
    const gpa = joinHalves(slot[SLOT_ADDR_LO]!, slot[SLOT_ADDR_HI]!);
    const size = slot[SLOT_SIZE]! as MmioSize;
    if (!validSize(size)) {
      // The slot is memory the vCPU thread writes: a width no bus has reads 0 and writes nothing.
      slot[SLOT_VALUE_LO] = 0;
      slot[SLOT_VALUE_HI] = 0;
      this.malformed++;
    } else if (slot[SLOT_OP] === OP_READ) {
      const value = this.bus.read(gpa, size);
      slot[SLOT_VALUE_LO] = splitLo(value);
      slot[SLOT_VALUE_HI] = splitHi(value);
    } else {
      this.bus.write(gpa, size, joinHalves(slot[SLOT_VALUE_LO]!, slot[SLOT_VALUE_HI]!));
    }
    this.exitsServed++;
    Atomics.store(slot, SLOT_STATE, STATE_RESPONSE);
    Atomics.notify(slot, SLOT_STATE);
  }
}
