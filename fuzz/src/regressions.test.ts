/**
 * Failures the hostile guest found, one test each, named after the failure. A test written
 * `it.fails` documents a bug still open in its package (see the report in fuzz/README.md):
 * it passes while the bug is there and fails once it is fixed — then turn it into `it`.
 */
import { encodeAttach, Status } from '@vmmkit/virtio-iommu';
import { describe, expect, it } from 'vitest';
import { createRawDevice, RAW_RAM } from './testing/raw-device.js';

const POISON = 0xa5;

describe('regressions', () => {
  // packages/virtio-iommu/src/device/request-handler.ts reply(): zero-fills the whole writable
  // part before the tail. A guest that hangs 4 GiB of writable buffers on one ATTACH makes the
  // host write 4 GiB (~2 s of host CPU per request, up to a queue of them per notification).
  it.fails('ATTACH with a huge writable part makes the host zero-fill all of it (work amplification)', () => {
    const raw = createRawDevice({ memorySize: 32 << 20 });
    const request = encodeAttach({ domain: 1, endpoint: 1 });
    const requestAt = RAW_RAM + 0x2_0000;
    const bufferAt = RAW_RAM + 0x10_0000;
    const bufferLength = 16 << 20;
    raw.memory.write(requestAt, request);
    raw.memory.fill(bufferAt, bufferLength, POISON);
    raw.requests.addChain([
      { addr: requestAt, len: request.length },
      { addr: bufferAt, len: bufferLength, write: true },
    ]);
    raw.kick();
    const [used] = raw.requests.usedSince(0);
    // The request was answered: the status sits in the last 4 bytes of the writable part.
    expect(used?.len).toBe(bufferLength);
    expect(raw.memory.read(bufferAt + bufferLength - 4, 1)[0]).toBe(Status.OK);
    // What the host promises: work per request bounded by what the protocol defines to write
    // (at most probe_size bytes of properties and the tail), not by the guest's buffer size.
    const view = raw.memory.read(bufferAt, bufferLength - 4);
    let overwritten = 0;
    for (const byte of view) if (byte !== POISON) overwritten++;
    expect(overwritten).toBeLessThanOrEqual(512);
  });
});
