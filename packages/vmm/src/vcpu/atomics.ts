/**
 * `Atomics.waitAsync` (ES2024) is in Node 20's V8 but not in the ES2023 lib this repo compiles
 * against; this types the one call we make.
 */
type WaitAsyncResult =
  | { async: false; value: 'not-equal' | 'timed-out' }
  | { async: true; value: Promise<'ok' | 'timed-out'> };

const atomicsWaitAsync = (
  Atomics as unknown as {
    waitAsync(array: Int32Array, index: number, value: number, timeout?: number): WaitAsyncResult;
  }
).waitAsync;

export function waitAsync(
  array: Int32Array,
  index: number,
  value: number,
  timeout?: number,
): WaitAsyncResult {
  return atomicsWaitAsync(array, index, value, timeout);
}
