/** The driver's record of domains and endpoints, kept in step with what the device holds. */
import { VmmError } from '@vmmkit/core';
import { IdAllocator } from './id-allocator.js';
import { KeptMappings } from './kept-mappings.js';

/**
 * What the driver knows of a domain. `paging` domains use MAP/UNMAP; `identity` domains map
 * guest RAM 1:1 (or use ATTACH_F_BYPASS when BYPASS_CONFIG was negotiated); `bypass` domains
 * always use ATTACH_F_BYPASS; `nested` domains hold a guest table (`nested-*.ts`).
 */
export type DomainKind = 'paging' | 'identity' | 'bypass' | 'nested';

export interface DomainRecord {
  kind: DomainKind;
  endpoints: Set<number>;
  /** Identity domain emulated with MAPs: whether the device currently holds them. */
  identityMapped: boolean;
  /** Mappings the driver keeps to replay after the domain died (paging domains, `keepMappings`). */
  kept: KeptMappings | null;
}

export class DomainRegistry {
  private readonly ids: IdAllocator;
  private readonly domains = new Map<number, DomainRecord>();
  private readonly endpointDomain = new Map<number, number>();

  /** Domain IDs come from `[start, end]` (the device's domain_range). */
  constructor(start: number, end: number) {
    this.ids = new IdAllocator(start, end, 'domain ID');
  }

  /** A fresh domain ID; the device creates the domain at its first attach. */
  create(kind: DomainKind, keepMappings = false): number {
    const id = this.ids.alloc();
    const kept = keepMappings && kind === 'paging' ? new KeptMappings() : null;
    this.domains.set(id, { kind, endpoints: new Set(), identityMapped: false, kept });
    return id;
  }

  /** The record of a domain, or `undefined` (no error: for observers of device answers). */
  find(domain: number): DomainRecord | undefined {
    return this.domains.get(domain);
  }

  /** Releases a domain ID; the domain must have no endpoint left. */
  destroy(domain: number): void {
    const record = this.record(domain);
    if (record.endpoints.size > 0) {
      throw new VmmError(
        'EBUSY',
        `domain ${domain} still has endpoints ${[...record.endpoints].join(', ')}; detach them first`,
      );
    }
    this.domains.delete(domain);
    this.ids.free(domain);
  }

  record(domain: number): DomainRecord {
    const record = this.domains.get(domain);
    if (record === undefined) {
      throw new VmmError('ENOENT', `domain ${domain} was not created by this driver (use createDomain())`);
    }
    return record;
  }

  domainOf(endpoint: number): number | undefined {
    return this.endpointDomain.get(endpoint);
  }

  /** An attach succeeded: the implicit move out of another domain included. */
  attached(endpoint: number, domain: number): void {
    const previous = this.endpointDomain.get(endpoint);
    if (previous !== undefined && previous !== domain) this.detached(endpoint);
    this.endpointDomain.set(endpoint, domain);
    this.domains.get(domain)?.endpoints.add(endpoint);
  }

  /** A detach succeeded: a domain without endpoints no longer exists on the device. */
  detached(endpoint: number): void {
    const domain = this.endpointDomain.get(endpoint);
    if (domain === undefined) return;
    this.endpointDomain.delete(endpoint);
    const record = this.domains.get(domain);
    if (record === undefined) return;
    record.endpoints.delete(endpoint);
    // virtio 1.2 §5.13.6.4: a domain dies with its last endpoint, mappings included.
    if (record.endpoints.size === 0) record.identityMapped = false;
  }

  /** The device was reset: nothing is attached and no domain exists. */
  clear(): void {
    for (const id of this.domains.keys()) this.ids.free(id);
    this.domains.clear();
    this.endpointDomain.clear();
  }
}
