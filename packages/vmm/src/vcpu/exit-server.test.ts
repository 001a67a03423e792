/**
 * The host end of the exit slot, driven by hand: the slot is shared memory the vCPU thread
 * writes, so the server must serve well-formed exits and doorbells and survive malformed ones.
 */
import type { MmioHandler } from '@vmmkit/core';
import { describe, expect, it } from 'vitest';
import { MmioBus } from '../bus/mmio-bus.js';
import * as P from './exit-protocol.js';
import { ExitServer } from './exit-server.js';

function rig() {
  const seen: string[] = [];
  const handler: MmioHandler = {
    name: 'probe',
    size: 0x100,
    read: (offset, size) => {
      seen.push(`r${size}@${offset}`);
      return 0x1234_5678;
    },
    write: (offset, size, value) => void seen.push(`w${size}@${offset}=${value.toString(16)}`),
  };
  const bus = new MmioBus();
  bus.register(0x1000, handler);
  const control = P.createControlBlock();
  const slotBuffer = P.createExitSlot();
  const slot = new Int32Array(slotBuffer);
  const server = new ExitServer(control, bus, 0);
  server.attach(slotBuffer);
  const exit = (op: number, gpa: number, size: number, value = 0) => {
    slot[P.SLOT_OP] = op;
    slot[P.SLOT_SIZE] = size;
    slot[P.SLOT_ADDR_LO] = P.splitLo(gpa);
    slot[P.SLOT_ADDR_HI] = P.splitHi(gpa);
    slot[P.SLOT_VALUE_LO] = value;
    slot[P.SLOT_VALUE_HI] = 0;
    slot[P.SLOT_STATE] = P.STATE_REQUEST;
    return server.poll();
  };
  const doorbell = (index: number, gpa: number, size: number, value: number) => {
    const at = P.SLOT_DB_RING + (index % P.DB_CAPACITY) * P.DB_ENTRY_WORDS;
    slot.set([P.splitLo(gpa), P.splitHi(gpa), size, value], at);
  };
  return { seen, slot, server, exit, doorbell, bus };
}

describe('ExitServer', () => {
  it('serves a read and a write exit against the bus and answers in the slot', () => {
    const { seen, slot, server, exit } = rig();
    expect(exit(P.OP_READ, 0x1010, 4)).toBe(1);
    expect(slot[P.SLOT_STATE]).toBe(P.STATE_RESPONSE);
    expect(slot[P.SLOT_VALUE_LO]! >>> 0).toBe(0x1234_5678);
    exit(P.OP_WRITE, 0x1020, 2, 0xbeef);
    expect(seen).toEqual(['r4@16', 'w2@32=beef']);
    expect(server.exitsServed).toBe(2);
    expect(server.malformed).toBe(0);
  });

  it('answers an exit of a width no bus has with 0 and touches no device', () => {
    const { seen, slot, server, exit } = rig();
    for (const size of [0, 3, 16, -1, 0x7fff_ffff]) {
      slot[P.SLOT_VALUE_LO] = 0x5555;
      exit(P.OP_READ, 0x1010, size);
      expect(slot[P.SLOT_STATE]).toBe(P.STATE_RESPONSE);
      expect(slot[P.SLOT_VALUE_LO]).toBe(0);
      exit(P.OP_WRITE, 0x1010, size, 1);
    }
    expect(seen).toEqual([]);
    expect(server.malformed).toBe(10);
    // The vCPU is never left waiting: every malformed exit still got its response.
    expect(server.exitsServed).toBe(10);
  });

  it('drains posted doorbells in order, drops malformed ones, and bounds a corrupted ring', () => {
    const { seen, slot, server, doorbell } = rig();
    doorbell(0, 0x1008, 4, 1);
    doorbell(1, 0x1008, 5, 2);
    doorbell(2, 0x1008, 4, 3);
    slot[P.SLOT_DB_TAIL] = 3;
    expect(server.poll()).toBe(3);
    expect(seen).toEqual(['w4@8=1', 'w4@8=3']);
    expect(server.malformed).toBe(1);
    expect(slot[P.SLOT_DB_HEAD]).toBe(3);
    // A tail far ahead of the head: one poll serves at most a ring's worth, then moves on.
    seen.length = 0;
    slot[P.SLOT_DB_TAIL] = 3 + 1_000_000;
    expect(server.poll()).toBe(P.DB_CAPACITY);
    expect(seen.length + server.malformed - 1).toBe(P.DB_CAPACITY);
    // A tail behind the head is nothing to do.
    slot[P.SLOT_DB_TAIL] = 0;
    expect(server.poll()).toBe(0);
  });

  it('busy-polls pollable handlers before exits and hands them back before it blocks', async () => {
    const { server, bus, exit } = rig();
    const calls: string[] = [];
    let pending = 0;
    let arrivesOnStop = 1;
    const pollable: MmioHandler = {
      name: 'pollable',
      size: 0x100,
      read: () => 0,
      write: () => {},
      startPolling: () => void calls.push('start'),
      poll: () => {
        const n = pending;
        pending = 0;
        if (n > 0) calls.push(`poll ${n}`);
        return n;
      },
      stopPolling: () => {
        calls.push('stop');
        const n = arrivesOnStop;
        arrivesOnStop = 0;
        return n;
      },
    };
    bus.register(0x2000, pollable);
    server.start();
    await new Promise((resolve) => setImmediate(resolve));
    // Work that arrived as polling stopped keeps the loop awake; it polls again, then blocks.
    expect(calls).toEqual(['start', 'stop', 'start', 'stop']);
    pending = 1;
    // The polled device runs on the way to an exit, before the exit is served.
    expect(exit(P.OP_READ, 0x1010, 4)).toBe(2);
    expect(calls.at(-1)).toBe('poll 1');
    await server.stop();
    expect(calls.slice(-2)).toEqual(['start', 'stop']);
  });
});
