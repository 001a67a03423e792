import { EventEmitter } from 'eventemitter3';

/**
 * A typed event emitter: `Events` maps each event name to its listener signature.
 * Re-exported so every package uses one emitter implementation and one typing style.
 */
export class TypedEmitter<Events extends EventEmitter.ValidEventTypes> extends EventEmitter<Events> {}

export type { EventEmitter };
