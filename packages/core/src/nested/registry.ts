import { VmmError } from '../errors.js';
import type { NestedFormatDescription, NestedTableBackend } from './backend.js';

/** The nested-table backends plugins registered, by virtio-iommu table format number. */
export class NestedBackendRegistry {
  private readonly backends = new Map<number, NestedTableBackend>();

  constructor(backends: readonly NestedTableBackend[] = []) {
    for (const backend of backends) this.add(backend);
  }

  add(backend: NestedTableBackend): void {
    const { format } = backend.describe(0);
    if (!Number.isInteger(format) || format < 1 || format > 0xffff) {
      throw new VmmError('EINVAL', `nested table format must be a le16 from 1 to 65535, got ${format}`);
    }
    const existing = this.backends.get(format);
    if (existing) {
      throw new VmmError(
        'EEXIST',
        `table format ${format} is registered by both '${existing.vendor}' and '${backend.vendor}'`,
      );
    }
    this.backends.set(format, backend);
  }

  /** Format numbers, ascending. */
  formats(): number[] {
    return [...this.backends.keys()].sort((a, b) => a - b);
  }

  find(format: number): NestedTableBackend | undefined {
    return this.backends.get(format);
  }

  /** What each registered format offers `endpoint`, in format order. */
  describe(endpoint: number): NestedFormatDescription[] {
    return this.formats().map((f) => this.backends.get(f)!.describe(endpoint));
  }
}
