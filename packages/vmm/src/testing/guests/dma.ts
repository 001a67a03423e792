/**
 * Guest program: copies a buffer with the DMA engine under PASID `args.pasid`, verifies it
 * byte for byte and by the engine's CRC-32, then asks for a copy under `args.badPasid`, which
 * the IOMMU refuses, and returns what the engine reported.
 */
import { crc32 } from 'node:zlib';
import { DmaEngineDriver } from '../../dma/dma-driver.js';
import type { GuestRuntime } from '../../vcpu/guest-runtime.js';

export default async function dma(rt: GuestRuntime) {
  const { pasid, badPasid, length } = rt.args as { pasid: number; badPasid: number; length: number };
  const [engine] = DmaEngineDriver.probe(rt);
  if (!engine) throw new Error('no DMA engine in the device tree');
  const src = rt.allocator.alloc(length);
  const dst = rt.allocator.alloc(length);
  const pattern = Uint8Array.from({ length }, (_, i) => (i * 31 + 7) & 0xff);
  rt.memory.write(src, pattern);
  const copy = await engine.run({ op: 'copy', src, dst, length, pasid });
  const same = Buffer.compare(rt.memory.read(dst, length), pattern) === 0;
  const sum = await engine.run({ op: 'crc32', src: dst, length, pasid });
  const fault = await engine.run({ op: 'copy', src, dst, length, pasid: badPasid });
  return {
    endpoint: engine.endpoint,
    pasidBits: engine.pasidBits,
    copy,
    same,
    crcMatches: sum.ok && sum.crc32 === crc32(pattern),
    fault,
    src,
    dst,
  };
}
