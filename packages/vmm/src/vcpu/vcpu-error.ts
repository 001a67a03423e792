/** A vCPU's guest program threw, or its thread died: carries the guest's own stack. */
export class VcpuError extends Error {
  override readonly name = 'VcpuError';

  constructor(
    readonly cpu: number,
    message: string,
    /** The stack as the guest thread saw it (worker stacks cross threads as text). */
    readonly guestStack: string,
    options?: ErrorOptions,
  ) {
    super(`vCPU ${cpu}: ${message}`, options);
  }
}

/** How one vCPU's run ended. */
export type VcpuOutcome =
  | { cpu: number; ok: true; result: unknown }
  | { cpu: number; ok: false; error: VcpuError };
