import { encodeProbe } from '../protocol/requests.js';
import type { IommuConfig, IommuFeatures } from './config.js';
import type { EndpointInfo } from './driver-options.js';
import { describeTableFormats, type EndpointProbe, parseProbeProperties } from './probe-parser.js';
import { STATUS_NOT_WRITTEN, VirtioIommuRequestError } from './request-error.js';
import type { RequestRing } from './request-ring.js';

/**
 * What the driver knows of each endpoint: its PROBE answer (virtio 1.2 §5.13.6.8), asked once
 * and cached, and the table formats that answer offers.
 */
export class EndpointProber {
  private readonly endpoints = new Map<number, EndpointInfo>();

  constructor(
    private readonly ring: RequestRing,
    private readonly features: IommuFeatures,
    private readonly config: IommuConfig,
  ) {}

  /** PROBE for an endpoint (cached). Without F_PROBE the endpoint has no properties. */
  probe(endpoint: number): EndpointInfo {
    const cached = this.endpoints.get(endpoint);
    if (cached) return cached;
    let probe: EndpointProbe = { reservedRegions: [], tableFormats: [], skipped: [] };
    if (this.features.probe && this.config.probeSize > 0) {
      const readable = encodeProbe({ endpoint });
      const size = this.config.probeSize;
      let answer: { usedLength: number; written: Uint8Array };
      try {
        answer = this.ring.submitLarge(readable, size + 4);
      } finally {
        this.ring.settle();
      }
      const { usedLength, written } = answer;
      // virtio 1.2 §5.13.6.1: the status is the last byte group of the writable part.
      // A PROBE answer covers the whole writable part (virtio 1.2 §5.13.6.8: probe_size bytes of
      // properties, then the tail); anything shorter did not deliver a status.
      const status = usedLength < size + 4 ? STATUS_NOT_WRITTEN : written[size]!;
      if (status !== 0) {
        throw new VirtioIommuRequestError(status, { type: 'PROBE', index: 0, fields: { endpoint } });
      }
      probe = parseProbeProperties(written.subarray(0, size));
    }
    const info: EndpointInfo = {
      id: endpoint,
      probe,
      formats: describeTableFormats(probe, {
        pageSizeMask: this.config.pageSizeMask,
        inputRange: this.config.inputRange,
      }),
    };
    this.endpoints.set(endpoint, info);
    return info;
  }
}
