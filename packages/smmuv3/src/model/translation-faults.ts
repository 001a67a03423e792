import { EventClass, EventType, makeEvent } from '../codec/event.js';
import type { S1Context } from './context.js';
import { ABORT_EVENT_TYPE, type ContextResolver } from './resolver.js';
import type { Smmuv3Stats, TranslationOut } from './types.js';
import type { WalkResult } from './walk.js';

const RECORD_GATED = new Set<number>([
  EventType.F_TRANSLATION,
  EventType.F_ADDR_SIZE,
  EventType.F_ACCESS,
  EventType.F_PERMISSION,
]);

/**
 * The event records of failed translations (IHI 0070 §7.3), counted in the SMMU's `faults`
 * statistic: each fills `out.event` and `out.recorded` and returns false, for the translation
 * to return.
 */
export class TranslationFaults {
  constructor(
    private readonly counters: Smmuv3Stats,
    private readonly resolver: ContextResolver,
    /** The walk whose external abort (F_WALK_EABT) names the address it fetched. */
    private readonly walkResult: WalkResult,
  ) {}

  /** The stream's configuration could not be resolved: the resolver's event, in `out`. */
  config(sid: number, ssid: number, out: TranslationOut): boolean {
    const r = this.resolver;
    const type = r.eventType;
    this.counters.faults++;
    // §7.3: C_BAD_SUBSTREAMID always carries a SubstreamID (no SSV; 0 when CD 0 was used for a
    // transaction without one); F_STREAM_DISABLED carries none.
    const ssidField = type === EventType.F_STREAM_DISABLED ? 0 : Math.max(ssid, 0);
    const ssv = ssid >= 0 && type !== EventType.C_BAD_SUBSTREAMID && type !== EventType.F_STREAM_DISABLED;
    const event = makeEvent(type, { sid, ssv, ssid: ssidField, fetchAddress: r.eventFetchAddress });
    if (type === ABORT_EVENT_TYPE) event.name = 'ABORT';
    out.event = event;
    // An STE abort records nothing; configuration errors are always recorded.
    out.recorded = type !== ABORT_EVENT_TYPE;
    return false;
  }

  /** A translation of `ctx` failed with event `type`: its event record, in `out`. */
  translation(
    type: number,
    ctx: S1Context,
    sid: number,
    ssid: number,
    iova: number,
    accessCode: number,
    out: TranslationOut,
  ): boolean {
    this.counters.faults++;
    const access = accessCode % 3;
    out.event = makeEvent(type, {
      sid,
      ssv: ssid >= 0,
      ssid: Math.max(ssid, 0),
      privileged: accessCode >= 3,
      instruction: access === 2,
      read: access !== 1,
      eventClass: type === EventType.F_WALK_EABT ? EventClass.TT : EventClass.IN,
      address: iova >= 0 && Number.isSafeInteger(iova) ? iova : 0,
      fetchAddress: type === EventType.F_WALK_EABT ? this.walkResult.fetchAddress : 0,
    });
    // IHI 0070 §5.4 CD.R: translation, address size, access and permission faults are recorded only with R=1.
    out.recorded = !RECORD_GATED.has(type) || ctx.record || ctx.kind !== 0;
    return false;
  }
}
