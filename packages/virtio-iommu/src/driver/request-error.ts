import { type ErrorCode, VmmError } from '@vmmkit/core';
import { Status, statusName } from '../protocol/constants.js';

/** A request as the driver describes it in errors: its type name and the fields it carried. */
export interface RequestDescription {
  /** `ATTACH`, `MAP`, `INVALIDATE`… */
  type: string;
  /** Position of the request in its batch (0 for a single request). */
  index: number;
  /** The request's fields, addresses as bigint. */
  fields: Readonly<Record<string, number | bigint | string | boolean>>;
}

/**
 * The errno a status becomes, after Linux's `viommu_get_req_errno`: the two "the device or
 * transport broke" statuses (IOERR, DEVERR) and a buffer returned unwritten are EIO.
 */
const ERRNO_OF_STATUS: Readonly<Record<number, ErrorCode>> = {
  [Status.IOERR]: 'EIO',
  [Status.UNSUPP]: 'ENOSYS',
  [Status.DEVERR]: 'EIO',
  [Status.INVAL]: 'EINVAL',
  [Status.RANGE]: 'ERANGE',
  [Status.NOENT]: 'ENOENT',
  [Status.FAULT]: 'EFAULT',
  [Status.NOMEM]: 'ENOMEM',
};

/** What each status says went wrong, for messages. */
const MEANING_OF_STATUS: Readonly<Record<number, string>> = {
  [Status.IOERR]: 'virtio communication error',
  [Status.UNSUPP]: 'the device does not support this request',
  [Status.DEVERR]: 'internal device error',
  [Status.INVAL]: 'invalid parameters',
  [Status.RANGE]: 'parameters out of range',
  [Status.NOENT]: 'no such endpoint or domain',
  [Status.FAULT]: 'bad address',
  [Status.NOMEM]: 'the device ran out of resources',
};

/** Status recorded for a buffer the device returned with used length 0 (virtio 1.2 §5.13.6.1). */
export const STATUS_NOT_WRITTEN = 0xff;

function describeFields(fields: RequestDescription['fields']): string {
  return Object.entries(fields)
    .map(([k, v]) => `${k}=${typeof v === 'bigint' ? `0x${v.toString(16)}` : String(v)}`)
    .join(' ');
}

/**
 * A request the device refused. `code` is the errno of the status; `status` the raw status
 * (or `STATUS_NOT_WRITTEN` when the device returned the buffer without writing it), and
 * `request` the request that failed, so a batch caller knows which one it was.
 */
export class VirtioIommuRequestError extends VmmError {
  readonly status: number;
  readonly request: RequestDescription;

  constructor(status: number, request: RequestDescription) {
    const unwritten = status === STATUS_NOT_WRITTEN;
    const code: ErrorCode = ERRNO_OF_STATUS[status] ?? 'EIO';
    const meaning = unwritten
      ? 'the device returned the buffer unwritten (used length 0: unknown or malformed request)'
      : (MEANING_OF_STATUS[status] ?? 'status the specification does not define');
    const name = unwritten ? 'no status' : statusName(status);
    super(
      code,
      `virtio-iommu ${request.type} (#${request.index}: ${describeFields(request.fields)}) failed with ${name}: ${meaning}`,
      { status, statusName: name, request },
    );
    this.status = status;
    this.request = request;
  }
}

/** Whether a status means success. */
export function isOk(status: number): boolean {
  return status === Status.OK;
}
