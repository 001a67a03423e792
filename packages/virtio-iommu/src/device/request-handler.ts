import type { DescriptorChain, GuestMemory } from '@vmmkit/core';
import { MAX_REQUEST_SIZE, RequestSize, RequestType, Status } from '../protocol/constants.js';
import { AttachOffset, DetachOffset, MapOffset, ProbeOffset, UnmapOffset } from '../protocol/requests.js';
import type { Endpoint } from './domains.js';
import type { IommuState } from './iommu-state.js';
import { attachTable, invalidate } from './nested.js';
import type { ProbeAnswers } from './probe.js';

/**
 * Zeros copied in front of a PROBE tail (unused properties, or the S_INVAL answer to a short
 * properties area). `probeSize` is at most 64 KiB, so a few copies at most.
 */
const ZEROS = new Uint8Array(4096);

/**
 * Frames requests popped from `requestq` (virtio 1.2 §5.13.6.1): parses the readable part,
 * runs the request, writes the reply so that the tail is the last 4 bytes of the writable part,
 * and returns the used length. One request buffer and one tail are reused for every request.
 *
 * Framing is strict on the writable part (kvmtool's rule, reference §7 pitfall 7): it must be
 * exactly what the protocol defines the device to write — the 4-byte tail, or for PROBE at
 * most `probe_size` bytes of properties and the tail. A longer writable part is returned
 * unwritten with used length 0 (reference §3.1, "cannot parse"). The device must have written
 * every byte up to the used length before publishing it (virtio 1.2 §2.7.8.2) and Linux reads
 * PROBE properties only when the used length is the whole writable part, so answering a longer
 * part would mean zero-filling whatever the guest hung on the chain: up to 4 GiB of host writes
 * per request. Bounding the writable part bounds host work by the protocol, not by the guest.
 * Longer *readable* parts stay tolerated (QEMU ignores the extra bytes): only
 * `MAX_REQUEST_SIZE` bytes of them are ever copied.
 */
export class RequestHandler {
  private readonly request = new Uint8Array(MAX_REQUEST_SIZE);
  private readonly view = new DataView(this.request.buffer);
  private readonly tail = new Uint8Array(RequestSize.TAIL);
  memory: GuestMemory | null = null;
  mapUnmapOn = false;
  probeOn = false;
  /** Requests answered, by status; and those returned with used length 0. */
  readonly statusCounts = new Float64Array(9);
  unanswered = 0;

  constructor(
    private readonly state: IommuState,
    public probeAnswers: Map<Endpoint, ProbeAnswers>,
    public probeSize: number,
  ) {}

  /** Handles one chain; returns the used length (0: returned unwritten). Never throws. */
  handle(chain: DescriptorChain): number {
    let used: number;
    try {
      used = this.dispatch(chain);
    } catch {
      // Only a bank unplugged under a popped chain gets here: the buffer cannot be written.
      used = 0;
    }
    if (used === 0) this.unanswered++;
    return used;
  }

  private dispatch(chain: DescriptorChain): number {
    const readable = chain.readableLength;
    const writable = chain.writableLength;
    // virtio 1.2 §5.13.6.1: a request too short to hold its head or its tail cannot be parsed:
    // the device returns it without writing anything.
    if (readable < RequestSize.HEAD || writable < RequestSize.TAIL) return 0;
    const got = chain.readInto(this.request, 0);
    const type = this.request[0];
    // Reference §7 pitfall 7 (kvmtool): every request but PROBE defines exactly a 4-byte writable
    // part; anything longer is not a request this device can frame, so it is returned unwritten
    // (used length 0) rather than zero-filled (see the class comment).
    if (type !== RequestType.PROBE && writable !== RequestSize.TAIL) return 0;
    const view = this.view;
    const state = this.state;
    let status: number;
    switch (type) {
      case RequestType.ATTACH:
        if (got < RequestSize.ATTACH) return 0;
        status = state.attach(
          view.getUint32(AttachOffset.DOMAIN, true),
          view.getUint32(AttachOffset.ENDPOINT, true),
          view.getUint32(AttachOffset.FLAGS, true),
          view.getUint32(AttachOffset.RESERVED, true),
        );
        break;
      case RequestType.DETACH:
        if (got < RequestSize.DETACH) return 0;
        status = state.detach(
          view.getUint32(DetachOffset.DOMAIN, true),
          view.getUint32(DetachOffset.ENDPOINT, true),
        );
        break;
      case RequestType.MAP:
        // virtio 1.2 §5.13.3: MAP and UNMAP exist with F_MAP_UNMAP; otherwise they are unknown types.
        if (!this.mapUnmapOn) return 0;
        if (got < RequestSize.MAP) return 0;
        status = state.map(
          view.getUint32(MapOffset.DOMAIN, true),
          view.getUint32(MapOffset.VIRT_START, true),
          view.getUint32(MapOffset.VIRT_START + 4, true),
          view.getUint32(MapOffset.VIRT_END, true),
          view.getUint32(MapOffset.VIRT_END + 4, true),
          view.getUint32(MapOffset.PHYS_START, true),
          view.getUint32(MapOffset.PHYS_START + 4, true),
          view.getUint32(MapOffset.FLAGS, true),
        );
        break;
      case RequestType.UNMAP:
        if (!this.mapUnmapOn) return 0;
        if (got < RequestSize.UNMAP) return 0;
        status = state.unmap(
          view.getUint32(UnmapOffset.DOMAIN, true),
          view.getUint32(UnmapOffset.VIRT_START, true),
          view.getUint32(UnmapOffset.VIRT_START + 4, true),
          view.getUint32(UnmapOffset.VIRT_END, true),
          view.getUint32(UnmapOffset.VIRT_END + 4, true),
          view.getUint32(UnmapOffset.RESERVED, true),
        );
        break;
      case RequestType.PROBE:
        // virtio 1.2 §5.13.6.8.2: without F_PROBE the device SHOULD NOT write; used length 0.
        if (!this.probeOn) return 0;
        if (got < RequestSize.PROBE) return 0;
        // virtio 1.2 §5.13.6.8: PROBE writes `probe_size` bytes of properties and the tail;
        // a longer writable part cannot be framed (class comment), a shorter one is S_INVAL below.
        if (writable > this.probeSize + RequestSize.TAIL) return 0;
        return this.probe(chain, view.getUint32(ProbeOffset.ENDPOINT, true));
      case RequestType.ATTACH_TABLE:
        // PROTOCOL.md: without bit 8 negotiated types 6 and 7 are unknown types.
        if (!state.nestedOn) return 0;
        if (got < RequestSize.ATTACH_TABLE || this.memory === null) return 0;
        status = attachTable(state, this.memory, view, this.request);
        break;
      case RequestType.INVALIDATE:
        if (!state.nestedOn) return 0;
        if (got < RequestSize.INVALIDATE) return 0;
        status = invalidate(state, view, this.request);
        break;
      default:
        // virtio 1.2 §5.13.6.1: an unknown type SHOULD NOT be written, with used length 0.
        return 0;
    }
    return this.reply(chain, status, null);
  }

  private probe(chain: DescriptorChain, endpointId: number): number {
    const endpoint = this.state.endpoints.get(endpointId);
    // virtio 1.2 §5.13.6.8.2: an endpoint the device does not know SHOULD be S_NOENT.
    if (endpoint === undefined) return this.reply(chain, Status.NOENT, null);
    // virtio 1.2 §5.13.6.8.2: a properties buffer smaller than probe_size gets no property and S_INVAL.
    if (chain.writableLength - RequestSize.TAIL < this.probeSize)
      return this.reply(chain, Status.INVAL, null);
    const answers = this.probeAnswers.get(endpoint)!;
    return this.reply(chain, Status.OK, this.state.nestedOn ? answers.nested : answers.upstream);
  }

  /**
   * Writes `body` at the start of the writable part, zeros up to the tail, and the tail as the
   * last 4 bytes (PROTOCOL.md framing). Returns the used length: the whole writable part, which
   * `dispatch` has bounded to `probe_size + 4` bytes.
   */
  private reply(chain: DescriptorChain, status: number, body: Uint8Array | null): number {
    const writable = chain.writableLength;
    const tailAt = writable - RequestSize.TAIL;
    let at = 0;
    if (body !== null && body.length > 0) at = chain.writeFrom(body, 0);
    // virtio 1.2 §5.13.6.8.2: the unused part of the properties is zero-filled. At most
    // `probe_size` bytes: dispatch refused every longer writable part.
    while (at < tailAt) {
      const n = Math.min(ZEROS.length, tailAt - at);
      const done = chain.writeFrom(n === ZEROS.length ? ZEROS : ZEROS.subarray(0, n), at);
      if (done === 0) return 0;
      at += done;
    }
    const tail = this.tail;
    // virtio 1.2 §5.13.6.1: the device SHOULD zero tail.reserved.
    tail[0] = status;
    if (chain.writeFrom(tail, tailAt) !== RequestSize.TAIL) return 0;
    this.statusCounts[status]++;
    return writable;
  }
}
