import type { IommuRequest } from '../protocol/requests.js';
import type { RequestDescription, VirtioIommuRequestError } from './request-error.js';

/** The outcome of a submitted batch. */
export class BatchResult {
  constructor(
    readonly count: number,
    private readonly statuses: Uint8Array,
    /** One error per refused request, in batch order. */
    readonly failures: readonly VirtioIommuRequestError[],
  ) {}

  get ok(): boolean {
    return this.failures.length === 0;
  }

  /** Status of request `index` (`STATUS_NOT_WRITTEN` when the device returned it unwritten). */
  status(index: number): number {
    return this.statuses[index]!;
  }

  /** Throws the first failure, its `details.failures` counting them all. */
  throwIfFailed(): void {
    const first = this.failures[0];
    if (first === undefined) return;
    if (this.failures.length > 1) (first.details as Record<string, unknown>).failures = this.failures.length;
    throw first;
  }
}

/** A decoded request as errors describe it: its type name and numeric fields. */
export function describeRequest(request: IommuRequest | null, index: number): RequestDescription {
  if (request === null) return { type: 'UNKNOWN', index, fields: {} };
  const { type, ...rest } = request;
  const fields: Record<string, number | bigint | string | boolean> = {};
  for (const [k, v] of Object.entries(rest)) {
    if (typeof v === 'number' || typeof v === 'bigint') fields[k] = v;
  }
  return { type: type.toUpperCase().replace('-', '_'), index, fields };
}
