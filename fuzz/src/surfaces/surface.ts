import type fc from 'fast-check';

/**
 * One guest-facing surface: an arbitrary of hostile inputs and a check that runs one input
 * against the real code, returns a short outcome label (counted as "distinct outcomes"), and
 * throws when the host broke a promise (an exception out of a device, a status the spec does
 * not name, memory reached outside what was given, a loop that did not end).
 */
export interface Surface<T = unknown> {
  readonly name: string;
  readonly description: string;
  readonly input: fc.Arbitrary<T>;
  run(input: T): string | Promise<string>;
}

/** Erases the input type so surfaces of different inputs fit one list. */
export function surface<T>(s: Surface<T>): Surface<unknown> {
  return s as unknown as Surface<unknown>;
}

export class HostPromiseBroken extends Error {}

export function expectThat(condition: boolean, message: string): asserts condition {
  if (!condition) throw new HostPromiseBroken(message);
}
