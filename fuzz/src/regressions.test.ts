/**
 * Failures the hostile guest found, one test each, named after the failure. A test written
 * `it.fails` documents a bug still open in its package (see the report in fuzz/README.md):
 * it passes while the bug is there and fails once it is fixed — then turn it into `it`.
 */
import { createTestMemory, MockSplitQueue } from '@vmmkit/core/testing';
import { ConfigOffset, encodeAttach, encodeProbe, Status } from '@vmmkit/virtio-iommu';
import { describe, expect, it } from 'vitest';
import { createRawDevice, RAW_RAM } from './testing/raw-device.js';

const POISON = 0xa5;
const REQUEST_AT = RAW_RAM + 0x2_0000;
const BUFFER_AT = RAW_RAM + 0x10_0000;

/** Bytes of `length` at `at` that are no longer the poison: what the host wrote. */
function overwritten(raw: ReturnType<typeof createRawDevice>, at: number, length: number): number {
  let n = 0;
  for (const byte of raw.memory.read(at, length)) if (byte !== POISON) n++;
  return n;
}

/** After a refused chain, an ordinary ATTACH on the next descriptors is still answered S_OK. */
function nextRequestServed(raw: ReturnType<typeof createRawDevice>, start: number, usedIndex: number): void {
  const request = encodeAttach({ domain: 7, endpoint: 2 });
  raw.memory.write(REQUEST_AT, request);
  raw.memory.fill(BUFFER_AT, 4, POISON);
  raw.requests.addChain(
    [
      { addr: REQUEST_AT, len: request.length },
      { addr: BUFFER_AT, len: 4, write: true },
    ],
    start,
  );
  raw.kick();
  expect(raw.requests.usedSince(usedIndex)).toEqual([{ id: start, len: 4 }]);
  expect(raw.memory.read(BUFFER_AT, 4)).toEqual(new Uint8Array(4));
  expect(raw.resets).toEqual([]);
}

describe('regressions', () => {
  // Was: a chain's indirect table could hold 65,536 descriptors although a driver MUST NOT make
  // a chain longer than the queue size (virtio 1.2 §2.7.5.3.1); 256 heads sharing one 1 MiB table
  // made each notification walk 16.7 M descriptors (~1.6 s of host CPU). Now the device queue
  // refuses a chain past max(queue size, 1024) buffers, QEMU's tolerance for Linux's long
  // indirect chains (packages/core device-queue.ts, MAX_CHAIN_BUFFERS).
  it('an indirect chain past 1024 buffers is refused, not walked whole (work amplification)', () => {
    const { memory } = createTestMemory({ base: RAW_RAM, size: 4 << 20 });
    const queueSize = 256;
    const mock = new MockSplitQueue(memory, RAW_RAM, queueSize);
    const table = RAW_RAM + 0x10_0000;
    const entries = 65_536;
    const bytes = new Uint8Array(16 * entries);
    const view = new DataView(bytes.buffer);
    for (let i = 0; i < entries; i++) {
      const last = i === entries - 1;
      view.setUint32(16 * i, RAW_RAM + 0x20_0000, true);
      view.setUint32(16 * i + 8, last ? 4 : 1, true);
      view.setUint16(16 * i + 12, last ? 2 : 1, true); // WRITE for the tail, else NEXT
      view.setUint16(16 * i + 14, i + 1, true);
    }
    memory.write(table, bytes);
    mock.writeDescriptor(0, { addr: table, len: 16 * entries, flags: 4, next: 0 });
    mock.pushAvail(0);
    const popped = mock.deviceQueue({ indirect: true }).pop();
    // What the host promises: work per chain bounded by max(queue size, 1024) descriptors.
    expect(popped).toMatchObject({ ok: false, error: 'chain-too-long' });
  });

  // Was: request-handler.ts reply() zero-filled the whole writable part before the tail, so a
  // guest that hung 4 GiB of writable buffers on one ATTACH made the host write 4 GiB (~2 s of
  // host CPU per request, a queue of them per notification). Now the writable part must be
  // exactly what the protocol defines (kvmtool's framing, reference §7 pitfall 7); a longer one
  // is returned unwritten with used length 0 (reference §3.1).
  it('ATTACH with a huge writable part makes the host zero-fill all of it (work amplification)', () => {
    const raw = createRawDevice({ memorySize: 32 << 20 });
    const request = encodeAttach({ domain: 1, endpoint: 1 });
    const bufferLength = 16 << 20;
    raw.memory.write(REQUEST_AT, request);
    raw.memory.fill(BUFFER_AT, bufferLength, POISON);
    raw.requests.addChain([
      { addr: REQUEST_AT, len: request.length },
      { addr: BUFFER_AT, len: bufferLength, write: true },
    ]);
    raw.kick();
    // Returned unwritten: used length 0, and the request had no effect.
    expect(raw.requests.usedSince(0)).toEqual([{ id: 0, len: 0 }]);
    expect(overwritten(raw, BUFFER_AT, bufferLength)).toBe(0);
    expect(raw.device.endpointDomain(1)).toBeNull();
    expect(raw.device.requestStats.unanswered).toBe(1);
    nextRequestServed(raw, 2, 1);
  });

  it('ATTACH with 4 GiB of aliased writable buffers costs the host no writes', () => {
    const raw = createRawDevice({ memorySize: 64 << 20 });
    const request = encodeAttach({ domain: 1, endpoint: 1 });
    raw.memory.write(REQUEST_AT, request);
    const segment = 32 << 20;
    raw.memory.fill(BUFFER_AT, segment, POISON);
    // 127 aliases of one 32 MiB buffer plus the tail-sized rest: 4 GiB − 28 bytes in one chain.
    const aliases = Array.from({ length: 128 }, (_, i) => ({
      addr: BUFFER_AT,
      len: i === 127 ? segment - request.length : segment,
      write: true,
    }));
    raw.requests.addChain([{ addr: REQUEST_AT, len: request.length }, ...aliases]);
    const started = performance.now();
    raw.kick();
    const elapsed = performance.now() - started;
    expect(raw.requests.usedSince(0)).toEqual([{ id: 0, len: 0 }]);
    expect(overwritten(raw, BUFFER_AT, segment)).toBe(0);
    // Zero-filling 4 GiB took seconds; refusing the chain is a walk over 129 descriptors.
    expect(elapsed).toBeLessThan(500);
    nextRequestServed(raw, 129, 1);
  });

  it('PROBE with a writable part longer than probe_size + 4 is returned unwritten', () => {
    const raw = createRawDevice({ memorySize: 32 << 20 });
    const request = encodeProbe({ endpoint: 1 });
    const probeSize = raw.device.readConfig(ConfigOffset.PROBE_SIZE, 4);
    raw.memory.write(REQUEST_AT, request);
    raw.memory.fill(BUFFER_AT, 1 << 20, POISON);
    raw.requests.addChain([
      { addr: REQUEST_AT, len: request.length },
      { addr: BUFFER_AT, len: 1 << 20, write: true },
    ]);
    // Exactly probe_size + 4 (Linux's framing) is answered with used length probe_size + 4.
    raw.requests.addChain(
      [
        { addr: REQUEST_AT, len: request.length },
        { addr: BUFFER_AT + (2 << 20), len: probeSize + 4, write: true },
      ],
      2,
    );
    raw.kick();
    expect(raw.requests.usedSince(0)).toEqual([
      { id: 0, len: 0 },
      { id: 2, len: probeSize + 4 },
    ]);
    expect(overwritten(raw, BUFFER_AT, 1 << 20)).toBe(0);
    expect(raw.memory.read(BUFFER_AT + (2 << 20) + probeSize, 4)).toEqual(Uint8Array.of(Status.OK, 0, 0, 0));
  });
});
