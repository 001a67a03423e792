import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { RequestType } from '../protocol/constants.js';
import { createVirtioIommuHarness } from '../testing/index.js';

/**
 * Replays what a Linux 6.12 guest sent to QEMU 7.2's virtio-iommu (fixtures/…/README.md):
 * every request through the real request queue, every status and PROBE answer, and every DMA
 * translation QEMU performed, in order.
 */

interface TraceLine {
  seq: number;
  op: string;
  req_hex?: string;
  status?: number;
  resp_tail_hex?: string;
  resp_props_hex?: string;
  probe_resp_len?: number;
  sid?: number;
  iova?: string;
  flag?: number;
  phys?: string | null;
  page_size_mask?: string;
  input_start?: string;
  input_end?: string;
  domain_start?: number;
  domain_end?: number;
  probe_size?: number;
  bypass?: number;
}

const tracePath = new URL('../fixtures/linux-virtio-iommu-strict/trace.jsonl.gz', import.meta.url);
const ENDPOINTS = [0, 8, 16, 24, 32, 248, 250, 251];
const REQUEST_OPS: Record<string, number> = {
  attach: RequestType.ATTACH,
  detach: RequestType.DETACH,
  map: RequestType.MAP,
  unmap: RequestType.UNMAP,
  probe: RequestType.PROBE,
};

function hexBytes(hex: string): Uint8Array {
  return Uint8Array.from(Buffer.from(hex, 'hex'));
}

describe('Linux strict-mode trace replay (QEMU 7.2 as reference)', () => {
  it('answers every request and translation as QEMU did', async () => {
    const lines = gunzipSync(readFileSync(tracePath))
      .toString('utf8')
      .split('\n')
      .filter((l) => l.length > 0)
      .map((l) => JSON.parse(l) as TraceLine);
    const config = lines.find((l) => l.op === 'config_read')!;
    const harness = createVirtioIommuHarness({
      endpoints: ENDPOINTS.map((id) => ({
        id,
        reservedRegions: [{ start: 0xfee0_0000n, end: 0xfeef_ffffn, subtype: 'msi' as const }],
      })),
      pageSizeMask: BigInt(config.page_size_mask!),
      inputRange: { start: BigInt(config.input_start!), end: BigInt(config.input_end!) },
      domainRange: { start: config.domain_start!, end: config.domain_end! },
      probeSize: config.probe_size!,
      bypass: config.bypass === 1,
      features: { attachTable: false },
    });
    const started = performance.now();
    const counts = { requests: 0, translations: 0, probes: 0 };
    const mismatches: string[] = [];
    for (const line of lines) {
      if (line.op in REQUEST_OPS) {
        const request = hexBytes(line.req_hex!);
        if (request[0] !== REQUEST_OPS[line.op])
          mismatches.push(`seq ${line.seq}: type ${request[0]} for ${line.op}`);
        const isProbe = line.op === 'probe';
        const writable = isProbe ? line.probe_resp_len! : 4;
        const { usedLength, written } = await harness.submit(request, writable);
        counts.requests++;
        const tail = written.subarray(writable - 4);
        if (usedLength !== writable || Buffer.from(tail).toString('hex') !== line.resp_tail_hex) {
          mismatches.push(
            `seq ${line.seq} ${line.op}: used ${usedLength}, tail ${Buffer.from(tail).toString('hex')}`,
          );
        }
        if (isProbe) {
          counts.probes++;
          const props = hexBytes(line.resp_props_hex!);
          const body = written.subarray(0, writable - 4);
          const same = body.subarray(0, props.length).every((b, i) => b === props[i]);
          const restZero = body.subarray(props.length).every((b) => b === 0);
          if (!same || !restZero) mismatches.push(`seq ${line.seq} probe properties differ`);
        }
      } else if (line.op === 'translate') {
        counts.translations++;
        const iova = BigInt(line.iova!);
        const result = harness.translate({
          endpoint: line.sid!,
          iova,
          access: line.flag === 2 ? 'write' : 'read',
        });
        const expected = line.phys === null ? iova : BigInt(line.phys!);
        if (!result.ok || result.address !== expected) {
          mismatches.push(
            `seq ${line.seq} translate sid ${line.sid} ${line.iova}: ${JSON.stringify(String(result.ok && result.address))}`,
          );
        }
      }
      if (mismatches.length > 10) break;
    }
    const elapsed = performance.now() - started;
    console.info(
      `replayed ${counts.requests} requests (${counts.probes} PROBE) and ${counts.translations} translations in ${elapsed.toFixed(0)} ms`,
    );
    expect(mismatches).toEqual([]);
    expect(counts).toEqual({ requests: 3 + 3 + 18_029 + 17_780, translations: 77_682, probes: 3 });
    expect(harness.events()).toEqual([]);
    expect(harness.device.faultStats.raised).toBe(0);
  });
});
