import { type InterruptLine, VmmError } from '@vmmkit/core';
import { waitAsync } from '../vcpu/atomics.js';

/**
 * Interrupt lines as words of a SharedArrayBuffer, one per line: kvmtool's irqfd. A device
 * raises a line by storing 1 and notifying; a vCPU blocks on the word with `Atomics.wait`
 * (or `waitAsync` inline) and consumes it by swapping it back to 0, like reading an eventfd.
 */
export class InterruptLines {
  readonly buffer: SharedArrayBuffer;
  private readonly words: Int32Array;
  private next = 0;
  /** Raises per line since creation, for statistics. */
  readonly raised: Uint32Array;

  constructor(readonly count = 64) {
    if (!Number.isSafeInteger(count) || count <= 0 || count > 1024) {
      throw new VmmError('EINVAL', `interrupt line count must be 1..1024, got ${String(count)}`);
    }
    this.buffer = new SharedArrayBuffer(count * 4);
    this.words = new Int32Array(this.buffer);
    this.raised = new Uint32Array(count);
  }

  /** Hands out the next free line number. */
  allocate(): number {
    if (this.next >= this.count) {
      throw new VmmError('ENOMEM', `all ${this.count} interrupt lines are in use (raise 'irqLines')`);
    }
    return this.next++;
  }

  /** A device-side handle for line `n`. */
  line(n: number): InterruptLine {
    this.check(n);
    return { raise: () => this.raise(n), lower: () => this.lower(n) };
  }

  raise(n: number): void {
    this.raised[n]!++;
    Atomics.store(this.words, n, 1);
    Atomics.notify(this.words, n);
  }

  lower(n: number): void {
    Atomics.store(this.words, n, 0);
  }

  isPending(n: number): boolean {
    this.check(n);
    return Atomics.load(this.words, n) !== 0;
  }

  private check(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n >= this.count) {
      throw new VmmError('EINVAL', `interrupt line ${String(n)} does not exist (0..${this.count - 1})`);
    }
  }
}

/** The vCPU side of the lines: waits and consumes, over the same shared words. */
export class InterruptWaiter {
  private readonly words: Int32Array;

  constructor(
    buffer: SharedArrayBuffer,
    private readonly spin: number,
  ) {
    this.words = new Int32Array(buffer);
  }

  get count(): number {
    return this.words.length;
  }

  /** Takes a pending interrupt without waiting; true when there was one. */
  take(line: number): boolean {
    return Atomics.exchange(this.words, line, 0) !== 0;
  }

  /** Blocks the calling thread (worker vCPUs only) until `line` is raised or `timeoutMs` passes. */
  waitBlocking(line: number, timeoutMs: number): boolean {
    const words = this.words;
    for (let i = 0; i < this.spin; i++) {
      if (Atomics.load(words, line) !== 0) return this.take(line);
    }
    const deadline = Number.isFinite(timeoutMs) ? performance.now() + timeoutMs : Number.POSITIVE_INFINITY;
    while (Atomics.load(words, line) === 0) {
      const left = deadline - performance.now();
      if (left <= 0) return false;
      Atomics.wait(words, line, 0, Number.isFinite(left) ? left : undefined);
    }
    return this.take(line);
  }

  /** Wakes every waiter without raising anything (a stopping vCPU re-checks why it woke). */
  wakeAll(): void {
    for (let line = 0; line < this.words.length; line++) Atomics.notify(this.words, line);
  }

  /** Waits without blocking the thread (inline vCPUs share the host's event loop); gives up once `cancelled()`. */
  async waitAsync(line: number, timeoutMs: number, cancelled: () => boolean = () => false): Promise<boolean> {
    const words = this.words;
    const deadline = Number.isFinite(timeoutMs) ? performance.now() + timeoutMs : Number.POSITIVE_INFINITY;
    while (Atomics.load(words, line) === 0) {
      if (cancelled()) return false;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      const waiting = waitAsync(words, line, 0, Number.isFinite(left) ? left : undefined);
      if (waiting.async) await waiting.value;
    }
    return this.take(line);
  }
}
