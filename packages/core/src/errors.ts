/**
 * errno-style errors for users of the vmmkit API.
 *
 * Guest mistakes never become exceptions that leave a device: devices answer them with the
 * status or event the specification names. A `VmmError` is for the *host-side* caller that
 * passed something wrong (a misaligned bank, an unknown format) or for a guest-memory access
 * helper whose caller is expected to turn it into a status.
 */

/** The errno codes vmmkit uses, with the Linux meaning they carry here. */
export const ErrorCode = {
  /** Operation not implemented by this backend (a vendor lacks the op). */
  ENOSYS: 'ENOSYS',
  /** Invalid argument. */
  EINVAL: 'EINVAL',
  /** No such object (format, bank, endpoint). */
  ENOENT: 'ENOENT',
  /** Value out of the representable or permitted range. */
  ERANGE: 'ERANGE',
  /** Bad address: an access touches memory that is not there or not permitted. */
  EFAULT: 'EFAULT',
  /** Out of memory (table pages, resource caps). */
  ENOMEM: 'ENOMEM',
  /** Object already exists (overlapping bank, duplicate registration). */
  EEXIST: 'EEXIST',
  /** Resource busy (bank in use, queue already enabled). */
  EBUSY: 'EBUSY',
  /** I/O error: a device or transport broke (a device error status, a queue the device abandoned). */
  EIO: 'EIO',
  /** A device did not answer within the bound the caller set. */
  ETIMEDOUT: 'ETIMEDOUT',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export class VmmError extends Error {
  override readonly name = 'VmmError';
  readonly code: ErrorCode;
  /** Structured facts about the failure (addresses, sizes), for programs that react to it. */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    code: ErrorCode,
    message: string,
    details: Record<string, unknown> = {},
    options?: ErrorOptions,
  ) {
    super(`${code}: ${message}`, options);
    this.code = code;
    this.details = details;
  }
}

export function isVmmError(value: unknown, code?: ErrorCode): value is VmmError {
  return value instanceof VmmError && (code === undefined || value.code === code);
}

/** Formats a guest-physical (or any) address the way the messages of vmmkit show them. */
export function hex(value: number | bigint): string {
  return `0x${value.toString(16)}`;
}
