import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type CmdqCommand, decodeCommand, encodeCommand } from './command.js';
import { decodeEvent, EventClass, EventType, encodeEvent, makeEvent } from './event.js';

function dwords(bytes: Uint8Array): bigint[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  return Array.from({ length: bytes.length / 8 }, (_, i) => view.getBigUint64(i * 8, true));
}

describe('command codec: worked encodings (reference §4)', () => {
  const cases: [string, CmdqCommand, bigint, bigint][] = [
    ['CFGI_STE sid 0x10 leaf', { op: 'CFGI_STE', sid: 0x10, leaf: true }, 0x0000001000000003n, 1n],
    ['CFGI_ALL', { op: 'CFGI_STE_RANGE', sid: 0, range: 31 }, 0x4n, 0x1fn],
    [
      'CFGI_CD sid 0x10 ssid 5 leaf',
      { op: 'CFGI_CD', sid: 0x10, ssid: 5, leaf: true },
      0x0000001000005005n,
      1n,
    ],
    ['CFGI_CD_ALL sid 0x10', { op: 'CFGI_CD_ALL', sid: 0x10 }, 0x0000001000000006n, 0n],
    ['TLBI_NH_ASID asid 1', { op: 'TLBI_NH_ASID', vmid: 0, asid: 1 }, 0x0001000000000011n, 0n],
    [
      'TLBI_NH_VA asid 1, 0x1000, leaf, no RIL',
      { op: 'TLBI_NH_VA', vmid: 0, asid: 1, address: 0x1000n, leaf: true, num: 0, scale: 0, tg: 0, ttl: 0 },
      0x0001000000000012n,
      0x0000000000001001n,
    ],
    [
      'TLBI_NH_VA with RIL (TG 1, TTL 3)',
      { op: 'TLBI_NH_VA', vmid: 0, asid: 1, address: 0x1000n, leaf: true, num: 0, scale: 0, tg: 1, ttl: 3 },
      0x0001000000000012n,
      0x0000000000001701n,
    ],
    [
      'CMD_SYNC CS=SEV MSH=ISH MSIAttr=OIWB',
      { op: 'CMD_SYNC', cs: 2, msh: 3, msiAttr: 0xf, msiData: 0, msiAddress: 0 },
      0x000000000fc02046n,
      0n,
    ],
  ];
  it.each(cases)('%s', (_name, cmd, dw0, dw1) => {
    const bytes = encodeCommand(cmd);
    expect(dwords(bytes)).toEqual([dw0, dw1]);
    expect(decodeCommand(bytes)).toMatchObject(cmd);
  });
});

describe('command codec: round trips', () => {
  const u16 = fc.integer({ min: 0, max: 0xffff });
  const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
  const u5 = fc.integer({ min: 0, max: 31 });
  const u2 = fc.integer({ min: 0, max: 3 });
  const va = fc.bigInt({ min: 0n, max: 2n ** 52n - 1n }).map((p) => p << 12n);
  const arbCmd: fc.Arbitrary<CmdqCommand> = fc.oneof(
    fc.record({ op: fc.constant('CFGI_STE' as const), sid: u32, leaf: fc.boolean(), ssec: fc.boolean() }),
    fc.record({ op: fc.constant('CFGI_STE_RANGE' as const), sid: u32, range: u5, ssec: fc.boolean() }),
    fc.record({
      op: fc.constant('CFGI_CD' as const),
      sid: u32,
      ssid: fc.integer({ min: 0, max: 2 ** 20 - 1 }),
      leaf: fc.boolean(),
      ssec: fc.boolean(),
    }),
    fc.record({ op: fc.constant('CFGI_CD_ALL' as const), sid: u32, ssec: fc.boolean() }),
    fc.record({ op: fc.constant('PREFETCH_CFG' as const), sid: u32, ssec: fc.boolean() }),
    fc.record({ op: fc.constant('TLBI_NH_ALL' as const), vmid: u16 }),
    fc.record({ op: fc.constant('TLBI_NH_ASID' as const), vmid: u16, asid: u16 }),
    fc.record({
      op: fc.constant('TLBI_NH_VA' as const),
      vmid: u16,
      asid: u16,
      address: va,
      leaf: fc.boolean(),
      num: u5,
      scale: u5,
      tg: u2,
      ttl: u2,
    }),
    fc.record({
      op: fc.constant('TLBI_NH_VAA' as const),
      vmid: u16,
      address: va,
      leaf: fc.boolean(),
      num: u5,
      scale: u5,
      tg: u2,
      ttl: u2,
    }),
    fc.record({
      op: fc.constant('CMD_SYNC' as const),
      cs: u2,
      msh: u2,
      msiAttr: fc.integer({ min: 0, max: 15 }),
      msiData: u32,
      msiAddress: fc.integer({ min: 0, max: 2 ** 50 - 1 }).map((v) => v * 4),
    }),
  );

  it('decode(encode(cmd)) === cmd and encode(decode(bytes)) === bytes', () => {
    fc.assert(
      fc.property(arbCmd, (cmd) => {
        const bytes = encodeCommand(cmd);
        expect(decodeCommand(bytes)).toEqual(cmd);
        expect(encodeCommand(decodeCommand(bytes) as CmdqCommand)).toEqual(bytes);
      }),
    );
  });

  it('unknown opcodes are reported whole', () => {
    const bytes = new Uint8Array(16);
    bytes[0] = 0x7f;
    bytes[15] = 0x80;
    expect(decodeCommand(bytes)).toEqual({ op: 'UNKNOWN', opcode: 0x7f, dword0: 0x7fn, dword1: 2n ** 63n });
  });
});

describe('event records', () => {
  it('worked F_TRANSLATION record (reference §5.2)', () => {
    const event = makeEvent(EventType.F_TRANSLATION, { sid: 0x10, read: true, address: 0x1234000 });
    expect(dwords(encodeEvent(event))).toEqual([0x0000001000000010n, 0x0000000800000000n, 0x1234000n, 0n]);
    expect(decodeEvent(encodeEvent(event))).toEqual(event);
    expect(event.name).toBe('F_TRANSLATION');
  });

  it('F_WALK_EABT carries the descriptor address in dword 3 and CLASS=TT', () => {
    const event = makeEvent(EventType.F_WALK_EABT, {
      sid: 3,
      ssv: true,
      ssid: 0xabcde,
      read: false,
      eventClass: EventClass.TT,
      address: 0x8080604567,
      fetchAddress: 0x4e4d_1010,
    });
    const bytes = encodeEvent(event);
    expect(dwords(bytes)).toEqual([0x00000003abcde80bn, 0x0000010000000000n, 0x8080604567n, 0x4e4d1010n]);
    expect(decodeEvent(bytes)).toEqual(event);
  });

  it('every record whose InputAddr fits a number round-trips field by field', () => {
    const arb = fc.record({
      type: fc.integer({ min: 0, max: 255 }),
      sid: fc.integer({ min: 0, max: 0xffff_ffff }),
      ssv: fc.boolean(),
      ssid: fc.integer({ min: 0, max: 2 ** 20 - 1 }),
      stag: fc.integer({ min: 0, max: 0xffff }),
      stall: fc.boolean(),
      privileged: fc.boolean(),
      instruction: fc.boolean(),
      read: fc.boolean(),
      s2: fc.boolean(),
      eventClass: fc.integer({ min: 0, max: 3 }),
      address: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
      fetchAddress: fc.integer({ min: 0, max: 2 ** 49 - 1 }).map((v) => v * 8),
    });
    fc.assert(
      fc.property(arb, (fields) => {
        const event = makeEvent(fields.type, fields);
        expect(decodeEvent(encodeEvent(event))).toEqual(event);
      }),
    );
  });
});
