import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RequestSize, RequestType } from '../protocol/constants.js';
import { encodeAttach } from '../protocol/requests.js';
import {
  createFakeNestedBackend,
  createVirtioIommuHarness,
  fakeNestedPlugin,
  POISON,
  requestStatus,
} from '../testing/index.js';

/**
 * Hostile requests: arbitrary bytes, lengths and descriptor splits never make the device throw
 * or hang, and every answer is either "unwritten, used length 0" or a spec status in the last
 * four bytes of the writable part with the tail's reserved bytes zero. Which of the two is fixed
 * by the framing alone (README "Framing"), so host work per request is bounded by the protocol.
 */

const PROBE_SIZE = 192;
const READABLE: Record<number, number> = {
  [RequestType.ATTACH]: RequestSize.ATTACH,
  [RequestType.DETACH]: RequestSize.DETACH,
  [RequestType.MAP]: RequestSize.MAP,
  [RequestType.UNMAP]: RequestSize.UNMAP,
  [RequestType.PROBE]: RequestSize.PROBE,
  [RequestType.ATTACH_TABLE]: RequestSize.ATTACH_TABLE,
  [RequestType.INVALIDATE]: RequestSize.INVALIDATE,
};

/**
 * The used length the framing rules give, with every feature negotiated: 0 for an unknown type,
 * a readable part shorter than the type's, or a writable part that is not the tail (PROBE: not
 * at most `probe_size` + tail); otherwise the whole writable part (reference §3.1, §7 pitfall 7).
 */
function framedUsedLength(type: number, readable: number, writable: number): number {
  const size = READABLE[type];
  if (size === undefined || readable < size || writable < RequestSize.TAIL) return 0;
  if (type === RequestType.PROBE) return writable <= PROBE_SIZE + RequestSize.TAIL ? writable : 0;
  return writable === RequestSize.TAIL ? writable : 0;
}

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
    // Half of the time the body is cut or zero-padded to exactly the type's readable part.
    fc.boolean(),
  )
  .map(([type, anyBody, smallIds, fit]) => {
    const size = READABLE[type];
    let body = anyBody;
    if (fit && size !== undefined) {
      body = new Uint8Array(size - RequestSize.HEAD);
      body.set(anyBody.subarray(0, body.length));
    }
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
      probeSize: PROBE_SIZE,
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
        // The exact framings Linux sends as often as arbitrary (and huge) writable parts.
        fc.oneof(
          // -1: exactly the type's framing (the tail; PROBE: probe_size bytes and the tail).
          { weight: 4, arbitrary: fc.constant(-1) },
          fc.integer({ min: 0, max: 200 }),
          fc.integer({ min: PROBE_SIZE + RequestSize.TAIL, max: 1 << 16 }),
        ),
        fc.array(fc.nat(), { maxLength: 3 }),
        fc.array(fc.nat(), { maxLength: 2 }),
        async (bytes, writableChoice, readCuts, writeCuts) => {
          const exact = bytes[0] === RequestType.PROBE ? PROBE_SIZE + RequestSize.TAIL : RequestSize.TAIL;
          const writable = writableChoice < 0 ? exact : writableChoice;
          const readable = split(bytes, readCuts);
          const writableLengths = split(new Uint8Array(writable), writeCuts).map((p) => p.length);
          const { usedLength, written } = await h.submitChain(readable, writableLengths);
          expect(usedLength).toBe(framedUsedLength(bytes[0]!, bytes.length, writable));
          if (usedLength === 0) {
            // Returned unwritten (virtio 1.2 §5.13.6.1): not one byte of the buffer changed.
            expect(written.every((b) => b === POISON)).toBe(true);
            seen.unanswered++;
            return;
          }
          seen.answered++;
          // Bounded host work: never more than PROBE's properties and tail.
          expect(usedLength).toBeLessThanOrEqual(PROBE_SIZE + RequestSize.TAIL);
          const tail = written.subarray(writable - RequestSize.TAIL);
          expect(tail[0]).toBeLessThanOrEqual(8);
          expect([tail[1], tail[2], tail[3]]).toEqual([0, 0, 0]);
        },
      ),
      { numRuns: 1000 },
    );
    // Both kinds of outcome were exercised, and the device is still healthy afterwards.
    expect(seen.answered).toBeGreaterThan(250);
    expect(seen.unanswered).toBeGreaterThan(300);
    expect(await requestStatus(h, encodeAttach({ domain: 2, endpoint: 2 }))).toBe(0);
  });
});
