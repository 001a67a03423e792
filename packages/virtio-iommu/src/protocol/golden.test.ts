import { describe, expect, it } from 'vitest';
import { FaultFlag, FaultReason, MapFlag, ResvMemSubtype } from './constants.js';
import { decodeFaultReport, encodeFaultReport } from './fault.js';
import { encodeProperties, parseProperties } from './properties.js';
import { decodeRequest, encodeAttach, encodeMap, encodeUnmap } from './requests.js';

/** Golden byte vectors (reference Appendix A and §5.1), checked both ways. */

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const bytes = (spaced: string) => Uint8Array.from(Buffer.from(spaced.replaceAll(' ', ''), 'hex'));

describe('golden vectors', () => {
  it('ATTACH domain 1, endpoint 8, flags 0', () => {
    const golden = bytes('01 00 00 00 01 00 00 00 08 00 00 00 00 00 00 00 00 00 00 00');
    expect(hex(encodeAttach({ domain: 1, endpoint: 8 }))).toBe(hex(golden));
    expect(decodeRequest(golden)).toEqual({ type: 'attach', domain: 1, endpoint: 8, flags: 0, reserved: 0 });
  });

  it('MAP domain 1, [0x1000, 0x1fff] → 0xa000, READ', () => {
    const golden = bytes(
      '03 00 00 00 01 00 00 00 00 10 00 00 00 00 00 00 ff 1f 00 00 00 00 00 00 00 a0 00 00 00 00 00 00 01 00 00 00',
    );
    const encoded = encodeMap({
      domain: 1,
      virtStart: 0x1000n,
      virtEnd: 0x1fffn,
      physStart: 0xa000n,
      flags: MapFlag.READ,
    });
    expect(hex(encoded)).toBe(hex(golden));
    expect(decodeRequest(golden)).toEqual({
      type: 'map',
      domain: 1,
      virtStart: 0x1000n,
      virtEnd: 0x1fffn,
      physStart: 0xa000n,
      flags: 1,
    });
  });

  it('UNMAP domain 1, [0x1000, 0x1fff]', () => {
    const golden = bytes(
      '04 00 00 00 01 00 00 00 00 10 00 00 00 00 00 00 ff 1f 00 00 00 00 00 00 00 00 00 00',
    );
    expect(hex(encodeUnmap({ domain: 1, virtStart: 0x1000, virtEnd: 0x1fff }))).toBe(hex(golden));
    expect(decodeRequest(golden)).toEqual({
      type: 'unmap',
      domain: 1,
      virtStart: 0x1000n,
      virtEnd: 0x1fffn,
      reserved: 0,
    });
  });

  it('RESV_MEM MSI 0xfee00000-0xfeefffff', () => {
    const golden = bytes('01 00 14 00 01 00 00 00 00 00 e0 fe 00 00 00 00 ff ff ef fe 00 00 00 00');
    const property = {
      type: 'resv-mem' as const,
      subtype: ResvMemSubtype.MSI,
      start: 0xfee0_0000n,
      end: 0xfeef_ffffn,
    };
    expect(hex(encodeProperties([property], 24))).toBe(hex(golden));
    expect(parseProperties(golden)).toEqual([property]);
  });

  it('fault report: R_MAPPING, READ|ADDRESS, endpoint 8, address 0x1000', () => {
    const golden = bytes('02 00 00 00 01 01 00 00 08 00 00 00 00 00 00 00 00 10 00 00 00 00 00 00');
    const report = {
      reason: FaultReason.MAPPING,
      flags: FaultFlag.READ | FaultFlag.ADDRESS,
      endpoint: 8,
      address: 0x1000n,
    };
    expect(hex(encodeFaultReport(report))).toBe(hex(golden));
    expect(decodeFaultReport(golden)).toEqual(report);
    // A driver ignores reports whose reserved bytes are set.
    const tampered = golden.slice();
    tampered[2] = 1;
    expect(decodeFaultReport(tampered)).toBeNull();
  });
});
