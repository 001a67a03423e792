import { RequestSize } from '../protocol/constants.js';
import type { VirtioIommuHarness } from './harness.js';

/** What a request got back: its status, or `'unanswered'` when the buffer came back with used length 0. */
export type RequestOutcome = number | 'unanswered';

/** Submits a request with a 4-byte tail and returns its status (or `'unanswered'`). */
export async function requestStatus(
  harness: VirtioIommuHarness,
  request: Uint8Array,
): Promise<RequestOutcome> {
  const { usedLength, written } = await harness.submit(request, RequestSize.TAIL);
  return usedLength === 0 ? 'unanswered' : written[0]!;
}
