import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RequestSize } from '../protocol/constants.js';
import { encodeAttach } from '../protocol/requests.js';
import {
  createFakeNestedBackend,
  createVirtioIommuHarness,
  fakeNestedPlugin,
  requestStatus,
} from '../testing/index.js';

/**
 * Hostile requests: arbitrary bytes, lengths and descriptor splits never make the device throw
 * or hang, and every answer is either "unwritten, used length 0" or a spec status in the last
 * four bytes of the writable part with the tail's reserved bytes zero.
 */

function split(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const pieces: Uint8Array[] = [];
  let at = 0;
  for (const p of points) {
    pieces.push(bytes.subarray(at, p));
    at = p;
  }
  pieces.push(bytes.subarray(at));
  return pieces;
}

const request = fc
  .tuple(
    fc.oneof({ arbitrary: fc.integer({ min: 1, max: 7 }), weight: 3 }, fc.integer({ min: 0, max: 255 })),
    // Bodies of exactly the request sizes (minus the head) as often as arbitrary ones.
    fc.oneof(
      fc.constantFrom(16, 24, 32, 56, 68, 80).chain((n) => fc.uint8Array({ minLength: n, maxLength: n + 8 })),
      fc.uint8Array({ minLength: 0, maxLength: 100 }),
    ),
    fc.boolean(),
  )
  .map(([type, body, smallIds]) => {
    const bytes = Uint8Array.of(type, 0, 0, 0, ...body);
    // Often aim at endpoints/domains that exist, so deep paths run too.
    if (smallIds && bytes.length >= 12) {
      bytes[4] = bytes[4]! & 3;
      bytes.fill(0, 5, 8);
      bytes[8] = bytes[8]! & 3;
      bytes.fill(0, 9, 12);
    }
    // ATTACH_TABLE: a known format and zero flags half of the time.
    if (smallIds && type === 6 && bytes.length >= 18) {
      bytes.fill(0, 12, 16);
      bytes[16] = 2 + (bytes[16]! & 1);
      bytes[17] = 0;
    }
    return bytes;
  });

describe('request parsing is total', () => {
  it('never throws; answers with used length 0 or a status tail', async () => {
    const h = createVirtioIommuHarness({
      endpoints: [
        { id: 0 },
        { id: 1, reservedRegions: [{ start: 0n, end: 0xfffn, subtype: 'reserved' }] },
        { id: 2 },
      ],
      pageSizeMask: 0xfffn,
      probeSize: 192,
      // Nested requests reach a real backend, which must refuse hostile payloads with a status.
      plugins: [
        fakeNestedPlugin(
          createFakeNestedBackend(),
          createFakeNestedBackend({ format: 2, kind: 'pasid-table' }),
        ),
      ],
    });
    await requestStatus(h, encodeAttach({ domain: 1, endpoint: 0 }));
    const seen = { answered: 0, unanswered: 0 };
    await fc.assert(
      fc.asyncProperty(
        request,
        fc.integer({ min: 0, max: 200 }),
        fc.array(fc.nat(), { maxLength: 3 }),
        fc.array(fc.nat(), { maxLength: 2 }),
        async (bytes, writable, readCuts, writeCuts) => {
          const readable = split(bytes, readCuts);
          const writableLengths = split(new Uint8Array(writable), writeCuts).map((p) => p.length);
          const { usedLength, written } = await h.submitChain(readable, writableLengths);
          if (usedLength === 0) {
            seen.unanswered++;
            return;
          }
          seen.answered++;
          expect(usedLength).toBe(writable);
          const tail = written.subarray(writable - RequestSize.TAIL);
          expect(tail[0]).toBeLessThanOrEqual(8);
          expect([tail[1], tail[2], tail[3]]).toEqual([0, 0, 0]);
        },
      ),
      { numRuns: 1000 },
    );
    // Both kinds of outcome were exercised, and the device is still healthy afterwards.
    expect(seen.answered).toBeGreaterThan(150);
    expect(seen.unanswered).toBeGreaterThan(100);
    expect(await requestStatus(h, encodeAttach({ domain: 2, endpoint: 2 }))).toBe(0);
  });
});
