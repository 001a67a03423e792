/**
 * Execution of CMDQ commands against the model's caches (IHI 0070 §4).
 *
 * Only invalidation and synchronisation have an effect here: the model consumes commands one
 * at a time and completes each before the next, so CMD_SYNC has nothing left to wait for.
 */
import type { CmdqCommand, UnknownCommand } from '../codec/command.js';
import type { Iotlb } from './iotlb.js';
import type { ContextResolver } from './resolver.js';
import type { CommandResult } from './types.js';

const OK: CommandResult = { ok: true };

function illegal(reason: string): CommandResult {
  return { ok: false, error: 'CERROR_ILL', reason };
}

/** Length in bytes covered by a TLBI_NH_VA(A): one address, or (NUM+1)·2^SCALE pages of TG's granule. */
function tlbiLength(cmd: { num: number; scale: number; tg: number }): number {
  if (cmd.tg === 0) return 1;
  const granule = 2 ** (cmd.tg * 2 + 10);
  return (cmd.num + 1) * 2 ** cmd.scale * granule;
}

export function executeCommand(
  cmd: CmdqCommand | UnknownCommand,
  resolver: ContextResolver,
  iotlb: Iotlb | null,
  configChanged: () => void,
): CommandResult {
  switch (cmd.op) {
    case 'PREFETCH_CFG':
      // §4.1.6: SSec=1 on the Non-secure queue is ILLEGAL, for every command that has SSec.
      if (cmd.ssec) return illegal('PREFETCH_CONFIG with SSec=1 on the Non-secure queue');
      return OK;
    case 'CMD_SYNC':
      return OK;
    case 'CFGI_STE':
      // §4.1.6: SSec=1 on the Non-secure command queue is ILLEGAL (CERROR_ILL).
      if (cmd.ssec) return illegal('CFGI_STE with SSec=1 on the Non-secure queue');
      resolver.invalidateStreams(cmd.sid, cmd.sid);
      configChanged();
      return OK;
    case 'CFGI_STE_RANGE': {
      if (cmd.ssec) return illegal('CFGI_STE_RANGE with SSec=1 on the Non-secure queue');
      // §4.3.3: Range 31 is CFGI_ALL; otherwise 2^(Range+1) StreamIDs aligned to their count.
      const count = 2 ** (cmd.range + 1);
      const first = cmd.range === 31 ? 0 : cmd.sid - (cmd.sid % count);
      resolver.invalidateStreams(first, cmd.range === 31 ? 2 ** 32 - 1 : first + count - 1);
      configChanged();
      return OK;
    }
    case 'CFGI_CD':
      if (cmd.ssec) return illegal('CFGI_CD with SSec=1 on the Non-secure queue');
      // Leaf=0 also drops cached L1CDs; this model does not cache L1CDs apart from the CDs.
      resolver.invalidateCds(cmd.sid, cmd.ssid);
      configChanged();
      return OK;
    case 'CFGI_CD_ALL':
      if (cmd.ssec) return illegal('CFGI_CD_ALL with SSec=1 on the Non-secure queue');
      resolver.invalidateCds(cmd.sid, -1);
      configChanged();
      return OK;
    case 'TLBI_NH_ALL':
    case 'TLBI_NSNH_ALL':
      iotlb?.invalidateAll();
      return OK;
    case 'TLBI_NH_ASID':
      iotlb?.invalidateAsid(cmd.asid);
      return OK;
    case 'TLBI_NH_VA':
    case 'TLBI_NH_VAA': {
      // §4.4.1.1: without IDR5.DS, TTL 0b01 is Reserved for a 16K TG and the command is CERROR_ILL.
      if (cmd.tg === 2 && cmd.ttl === 1) return illegal(`${cmd.op} with TG 16K and TTL 0b01 (no DS)`);
      // Every cached IOVA is below 2^52; an address beyond the safe range matches nothing.
      if (cmd.address >= 2n ** 53n) return OK;
      const asid = cmd.op === 'TLBI_NH_VA' ? cmd.asid : -1;
      iotlb?.invalidateRange(asid, Number(cmd.address), tlbiLength(cmd));
      return OK;
    }
    case 'UNKNOWN':
      // CMD_PREFETCH_ADDR (0x02) is a hint; with nothing to prefetch it completes.
      if (cmd.opcode === 0x02) return OK;
      return illegal(`opcode 0x${cmd.opcode.toString(16)} is not supported`);
  }
}
