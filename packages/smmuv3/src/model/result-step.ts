/** The final step of `explain`: where the DMA went, or the event and why. */
import { hex, type TranslationStep } from '@vmmkit/core';
import type { SmmuEvent } from '../codec/event.js';
import type { TranslationOut } from './types.js';

export function resultStep(ok: boolean, out: TranslationOut, reason: string): TranslationStep {
  if (ok) {
    return {
      label: 'result',
      value: `pa ${hex(out.pa)}`,
      fields: {
        pa: hex(out.pa),
        read: (out.perm & 1) !== 0,
        write: (out.perm & 2) !== 0,
        exec: (out.perm & 4) !== 0,
        level: out.level,
        pageSize: out.pageSize,
      },
    };
  }
  const event = out.event as SmmuEvent;
  return {
    label: 'result',
    value: `fault ${event.name}`,
    fields: {
      event: event.name,
      type: event.type,
      recorded: out.recorded,
      ...(reason !== '' ? { reason } : {}),
      address: hex(event.address),
      ...(event.fetchAddress !== 0 ? { fetchAddress: hex(event.fetchAddress) } : {}),
    },
  };
}
