import { DeviceStatus, featureBit, VirtioFeature } from '@vmmkit/core';
import { describe, expect, it } from 'vitest';
import { ConfigOffset, IommuFeature, MapFlag, RequestType, Status } from '../protocol/constants.js';
import { parseProperties } from '../protocol/properties.js';
import {
  encodeAttach,
  encodeAttachTable,
  encodeDetach,
  encodeInvalidate,
  encodeMap,
  encodeProbe,
  encodeUnmap,
} from '../protocol/requests.js';
import { createVirtioIommuHarness, POISON, requestStatus } from '../testing/index.js';

/** PROBE (reference §3.6), request framing (§3.1, §7 pitfall 7), configuration space and reset. */

const endpoints = [
  {
    id: 8,
    reservedRegions: [
      { start: 0xfee0_0000n, end: 0xfeef_ffffn, subtype: 'msi' as const },
      { start: 0x1_0000_0000n, end: 0x1_0000_ffffn, subtype: 'reserved' as const },
    ],
  },
  { id: 9 },
];

describe('PROBE', () => {
  it('reports RESV_MEM regions, zero-fills the rest, and writes probe_size + 4 bytes', async () => {
    const h = createVirtioIommuHarness({ endpoints, probeSize: 128 });
    const { usedLength, written } = await h.submit(encodeProbe({ endpoint: 8 }), 132);
    expect(usedLength).toBe(132);
    expect(written.subarray(128)).toEqual(new Uint8Array(4));
    expect(written.subarray(48, 128).every((b) => b === 0)).toBe(true);
    expect(parseProperties(written.subarray(0, 128))).toEqual([
      { type: 'resv-mem', subtype: 1, start: 0xfee0_0000n, end: 0xfeef_ffffn },
      { type: 'resv-mem', subtype: 0, start: 0x1_0000_0000n, end: 0x1_0000_ffffn },
    ]);
  });

  it('an endpoint without properties gets an all-zero properties area', async () => {
    const h = createVirtioIommuHarness({ endpoints, probeSize: 64 });
    const { usedLength, written } = await h.submit(encodeProbe({ endpoint: 9 }), 68);
    expect(usedLength).toBe(68);
    expect(written).toEqual(new Uint8Array(68));
  });

  it('an unknown endpoint is S_NOENT', async () => {
    const h = createVirtioIommuHarness({ endpoints, probeSize: 64 });
    const { written } = await h.submit(encodeProbe({ endpoint: 3 }), 68);
    expect(written[64]).toBe(Status.NOENT);
  });

  it('a properties area smaller than probe_size gets no property and S_INVAL', async () => {
    const h = createVirtioIommuHarness({ endpoints, probeSize: 64 });
    const { usedLength, written } = await h.submit(encodeProbe({ endpoint: 8 }), 40);
    expect(usedLength).toBe(40);
    expect(written.subarray(0, 36)).toEqual(new Uint8Array(36));
    expect(written[36]).toBe(Status.INVAL);
  });

  it('ignores reserved[64] and the head reserved bytes (virtio 1.2 §5.13.6.8.2: MUST ignore)', async () => {
    const h = createVirtioIommuHarness({ endpoints, probeSize: 64 });
    const clean = await h.submit(encodeProbe({ endpoint: 8 }), 68);
    const dirty = encodeProbe({ endpoint: 8 });
    dirty.fill(0xff, 1, 4);
    dirty.fill(0x5a, 8, 72);
    const answer = await h.submit(dirty, 68);
    expect(answer.usedLength).toBe(68);
    expect(answer.written).toEqual(clean.written);
    expect(answer.written[64]).toBe(Status.OK);
  });

  it('without F_PROBE the request is returned unwritten', async () => {
    const h = createVirtioIommuHarness({ endpoints, features: { probe: false } });
    const { usedLength, written } = await h.submit(encodeProbe({ endpoint: 8 }), 516);
    expect(usedLength).toBe(0);
    expect(written.every((b) => b === POISON)).toBe(true);
  });

  it('the device refuses a configuration whose properties do not fit probe_size', () => {
    expect(() => createVirtioIommuHarness({ endpoints, probeSize: 24 })).toThrow(/probeSize/);
  });
});

describe('framing', () => {
  const attach = encodeAttach({ domain: 1, endpoint: 8 });

  it('ignores readable bytes past the request (QEMU), answering in the 4-byte tail', async () => {
    const h = createVirtioIommuHarness({ endpoints });
    const longer = new Uint8Array(64);
    longer.set(attach);
    longer.fill(0xee, 20);
    const { usedLength, written } = await h.submit(longer, 4);
    expect(usedLength).toBe(4);
    expect(written).toEqual(new Uint8Array(4));
    expect(h.device.endpointDomain(8)).toBe(1);
  });

  // Reference §7 pitfall 7 (kvmtool) and §3.1: a writable part longer than the protocol defines
  // cannot be framed; answering it would oblige the host to write all of it (virtio 1.2 §2.7.8.2).
  it('returns a writable part longer than the tail (or than probe_size + 4) unwritten, used length 0', async () => {
    const h = createVirtioIommuHarness({ endpoints, probeSize: 64 });
    for (const writable of [5, 8, 16, 4096]) {
      const { usedLength, written } = await h.submit(attach, writable);
      expect({ writable, usedLength }).toEqual({ writable, usedLength: 0 });
      expect(written.every((b) => b === POISON)).toBe(true);
    }
    expect(h.device.endpointDomain(8)).toBeNull();
    for (const writable of [69, 72, 516]) {
      const { usedLength, written } = await h.submit(encodeProbe({ endpoint: 8 }), writable);
      expect({ writable, usedLength }).toEqual({ writable, usedLength: 0 });
      expect(written.every((b) => b === POISON)).toBe(true);
    }
    // Split over descriptors the rule is the same: the total writable length counts.
    expect((await h.submitChain([attach], [2, 2, 1])).usedLength).toBe(0);
    expect(h.device.requestStats.unanswered).toBe(8);
    // Exactly framed, as Linux sends them: answered.
    expect((await h.submitChain([attach], [2, 2])).usedLength).toBe(4);
    expect((await h.submit(encodeProbe({ endpoint: 8 }), 68)).usedLength).toBe(68);
  });

  it('ignores the head reserved bytes of every request (virtio 1.2 §5.13.6: MUST ignore)', async () => {
    const h = createVirtioIommuHarness({ endpoints });
    const dirty = (request: Uint8Array) => {
      const copy = request.slice();
      copy.set([0xff, 0x80, 0x01], 1);
      return copy;
    };
    expect(await requestStatus(h, dirty(attach))).toBe(Status.OK);
    const map = encodeMap({
      domain: 1,
      virtStart: 0x1000,
      virtEnd: 0x1fff,
      physStart: 0,
      flags: MapFlag.READ,
    });
    expect(await requestStatus(h, dirty(map))).toBe(Status.OK);
    expect(await requestStatus(h, dirty(encodeUnmap({ domain: 1, virtStart: 0, virtEnd: 0xffff })))).toBe(
      Status.OK,
    );
    expect(await requestStatus(h, dirty(encodeDetach({ domain: 1, endpoint: 8 })))).toBe(Status.OK);
    expect(await requestStatus(h, dirty(encodeInvalidate({ granularity: 1, caches: 1, domain: 1 })))).toBe(
      Status.NOENT,
    );
    expect(h.device.requestStats.unanswered).toBe(0);
  });

  it('does not assume how the request is split over descriptors', async () => {
    const h = createVirtioIommuHarness({ endpoints });
    const request = encodeMap({
      domain: 1,
      virtStart: 0x1000,
      virtEnd: 0x1fff,
      physStart: 0x5000,
      flags: MapFlag.READ,
    });
    expect(await requestStatus(h, attach)).toBe(Status.OK);
    const pieces = [request.subarray(0, 1), request.subarray(1, 9), new Uint8Array(0), request.subarray(9)];
    const { usedLength, written } = await h.submitChain(pieces, [1, 0, 3]);
    expect(usedLength).toBe(4);
    expect(written).toEqual(new Uint8Array(4));
    expect(h.device.mappingCount).toBe(1);
  });

  it('returns too-short requests, too-short tails and unknown types with used length 0, unwritten', async () => {
    const h = createVirtioIommuHarness({ endpoints });
    const cases: [Uint8Array, number][] = [
      [attach.subarray(0, 19), 4],
      [attach, 3],
      [attach.subarray(0, 3), 4],
      [encodeMap({ domain: 1, virtStart: 0, virtEnd: 0xfff, physStart: 0, flags: 1 }).subarray(0, 35), 4],
      [Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0), 4],
      [Uint8Array.of(8, 0, 0, 0, ...new Uint8Array(60)), 4],
      [Uint8Array.of(0xff, 0, 0, 0, ...new Uint8Array(60)), 4],
    ];
    for (const [request, writable] of cases) {
      const { usedLength, written } = await h.submit(request, writable);
      expect({ type: request[0], usedLength }).toEqual({ type: request[0], usedLength: 0 });
      expect(written.every((b) => b === POISON)).toBe(true);
    }
    expect(h.device.endpointDomain(8)).toBeNull();
    expect(h.device.requestStats.unanswered).toBe(cases.length);
  });

  it('raises the used-buffer interrupt for completed requests and for fault reports', async () => {
    const h = createVirtioIommuHarness({ endpoints, bypass: false });
    const before = h.interrupts;
    expect(await requestStatus(h, attach)).toBe(Status.OK);
    expect(h.interrupts).toBe(before + 1);
    expect(h.transport.interruptStatus & 1).toBe(1);
    h.guest.virtio.ackInterrupt(1);
    h.translate({ endpoint: 9, iova: 0n, access: 'read' });
    expect(h.interrupts).toBe(before + 2);
    expect(h.events()).toHaveLength(1);
  });

  it('a malformed descriptor chain comes back with used length 0 and the device keeps working', async () => {
    const h = createVirtioIommuHarness({ endpoints });
    const { requestQueue, memory, scratch, virtio } = h.guest;
    memory.write(scratch.base, attach);
    const head = requestQueue.add(
      [{ addr: scratch.base, len: 20 }],
      [{ addr: scratch.base + 64, len: 4 }],
      'bad',
    );
    // The driver's chain now links to a descriptor beyond the queue.
    memory.writeU16(requestQueue.layout.descTable + 16 * head + 14, 0xffff);
    virtio.notify(0);
    const used: [unknown, number][] = [];
    requestQueue.collect((token, len) => used.push([token, len]));
    expect(used).toEqual([['bad', 0]]);
    expect(h.device.endpointDomain(8)).toBeNull();
    expect(await requestStatus(h, attach)).toBe(Status.OK);
  });

  it('ATTACH_TABLE and INVALIDATE are unknown types unless bit 8 is negotiated', async () => {
    const h = createVirtioIommuHarness({ endpoints, features: { attachTable: false } });
    expect(h.device.negotiatedFeatures & (1n << BigInt(IommuFeature.ATTACH_TABLE))).toBe(0n);
    const table = encodeAttachTable({ domain: 1, endpoint: 8, format: 2 });
    const inval = encodeInvalidate({ granularity: 1, caches: 1, domain: 1 });
    expect(table[0]).toBe(RequestType.ATTACH_TABLE);
    expect(await requestStatus(h, table)).toBe('unanswered');
    expect(await requestStatus(h, inval)).toBe('unanswered');
    const nested = createVirtioIommuHarness({ endpoints });
    expect(await requestStatus(nested, table)).toBe(Status.UNSUPP); // no format registered
    expect(await requestStatus(nested, inval)).toBe(Status.NOENT);
  });
});

describe('configuration space and negotiation', () => {
  it('presents every field as configured, read through virtio-mmio', () => {
    const h = createVirtioIommuHarness({
      endpoints,
      pageSizeMask: 0xffff_ffff_ffff_0000n,
      inputRange: { start: 0x1000n, end: (1n << 48n) - 1n },
      domainRange: { start: 3, end: 4000 },
      probeSize: 256,
      bypass: false,
    });
    const v = h.guest.virtio;
    expect(v.readConfig64(ConfigOffset.PAGE_SIZE_MASK)).toBe(0xffff_ffff_ffff_0000n);
    expect(v.readConfig64(ConfigOffset.INPUT_START)).toBe(0x1000n);
    expect(v.readConfig64(ConfigOffset.INPUT_END)).toBe((1n << 48n) - 1n);
    expect(v.readConfig32(ConfigOffset.DOMAIN_START)).toBe(3);
    expect(v.readConfig32(ConfigOffset.DOMAIN_END)).toBe(4000);
    expect(v.readConfig32(ConfigOffset.PROBE_SIZE)).toBe(256);
    expect(v.readConfig8(ConfigOffset.BYPASS)).toBe(0);
  });

  it('negotiates what Linux asks for; legacy BYPASS is not offered by default', () => {
    const h = createVirtioIommuHarness({ endpoints });
    const bits = [0, 1, 2, 4, 5, 6, 8].reduce((a, b) => a | (1n << BigInt(b)), 0n);
    expect(h.device.negotiatedFeatures).toBe(bits);
    expect(h.device.deviceFeatures & (1n << BigInt(IommuFeature.BYPASS))).toBe(0n);
    expect(h.guest.features & featureBit(VirtioFeature.VERSION_1)).not.toBe(0n);
    expect(h.transport.status & DeviceStatus.DRIVER_OK).toBe(DeviceStatus.DRIVER_OK);
  });

  it('the driver may write bypass (bit 0 only) with F_BYPASS_CONFIG; other fields are read-only', async () => {
    const h = createVirtioIommuHarness({ endpoints, bypass: true });
    const v = h.guest.virtio;
    v.writeConfig8(ConfigOffset.BYPASS, 0xfe);
    expect(v.readConfig8(ConfigOffset.BYPASS)).toBe(0);
    expect(h.translate({ endpoint: 9, iova: 0x1000n, access: 'read' }).ok).toBe(false);
    v.writeConfig8(ConfigOffset.BYPASS, 1);
    expect(h.translate({ endpoint: 9, iova: 0x1000n, access: 'read' })).toMatchObject({
      ok: true,
      address: 0x1000n,
    });
    v.writeConfig32(ConfigOffset.PROBE_SIZE, 7);
    expect(v.readConfig32(ConfigOffset.PROBE_SIZE)).toBe(512);
  });

  it('device reset detaches every endpoint and destroys every domain; bypass keeps its value', async () => {
    const h = createVirtioIommuHarness({ endpoints, bypass: true });
    h.guest.virtio.writeConfig8(ConfigOffset.BYPASS, 0);
    expect(await requestStatus(h, encodeAttach({ domain: 1, endpoint: 8 }))).toBe(Status.OK);
    expect(
      await requestStatus(h, encodeMap({ domain: 1, virtStart: 0, virtEnd: 0xfff, physStart: 0, flags: 1 })),
    ).toBe(Status.OK);
    const detached: unknown[] = [];
    h.device.on('detach', (e) => detached.push(e));
    h.guest.virtio.reset();
    expect(h.device.domains()).toEqual([]);
    expect(h.device.mappingCount).toBe(0);
    expect(detached).toEqual([{ domain: 1, endpoint: 8, destroyed: true, cause: 'reset' }]);
    expect(h.device.bypass).toBe(false);
    h.device.systemReset();
    expect(h.device.bypass).toBe(true);
  });
});
