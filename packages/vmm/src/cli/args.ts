import { parseArgs } from 'node:util';

/** A command-line mistake: the CLI prints it with the usage and exits with status 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export type IommuKind = 'virtio' | 'none';

export interface RunConfig {
  command: 'run';
  /** RAM in bytes. */
  mem: number;
  cpus: number;
  iommu: IommuKind;
  /** `off`, or the PASID-table vendor to use (`arm`, or one a plugin registered). */
  nested: string;
  pasids: number;
  /** Whether --pasids was given (it conflicts with setups that have no PASIDs). */
  pasidsGiven: boolean;
  plugins: string[];
  mode: 'worker' | 'inline';
  json: boolean;
}

export interface ExplainConfig extends Omit<RunConfig, 'command'> {
  command: 'explain';
  /** null when not given: a single page table (`--nested virt`) has no PASIDs. */
  pasid: number | null;
  /** IOVA as a bigint: any 64-bit value is accepted on the command line. */
  iova: bigint;
}

export type CliCommand =
  | RunConfig
  | ExplainConfig
  | { command: 'help'; topic?: string }
  | { command: 'version' };

export const DEFAULTS = {
  mem: 64 * 1024 * 1024,
  cpus: 1,
  iommu: 'virtio' as IommuKind,
  nested: 'arm',
  pasids: 4,
  mode: 'worker' as const,
};

/** Smallest machine the demo fits in (rings, tables and DMA buffers for every PASID). */
export const MIN_MEM = 4 * 1024 * 1024;
export const MAX_MEM = 16 * 1024 * 1024 * 1024;
export const MAX_PASIDS = 64;

const RUN_OPTIONS = {
  mem: { type: 'string', short: 'm' },
  cpus: { type: 'string', short: 'c' },
  iommu: { type: 'string' },
  nested: { type: 'string' },
  pasids: { type: 'string' },
  plugin: { type: 'string', multiple: true },
  mode: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

const EXPLAIN_OPTIONS = {
  ...RUN_OPTIONS,
  pasid: { type: 'string' },
  iova: { type: 'string' },
} as const;

const SIZE_UNITS: Record<string, number> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30 };

/** `256M`, `1G`, `65536K`, `4194304` (bytes); binary units, as `lkvm run -m` (which takes MiB). */
export function parseSize(text: string, what: string): number {
  const match = /^(\d+)([KMG]?)(i?B)?$/i.exec(text.trim());
  if (match === null) {
    throw new UsageError(
      `${what} '${text}' is not a size: use a number with an optional K, M or G suffix (e.g. 256M)`,
    );
  }
  const bytes = Number(match[1]) * SIZE_UNITS[match[2]!.toUpperCase()]!;
  if (!Number.isSafeInteger(bytes)) throw new UsageError(`${what} '${text}' is too large`);
  return bytes;
}

function parseInteger(text: string, what: string, min: number, max: number): number {
  if (!/^\d+$/.test(text.trim())) {
    throw new UsageError(`${what} '${text}' is not a whole number (accepted: ${min} to ${max})`);
  }
  const value = Number(text);
  if (value < min || value > max)
    throw new UsageError(`${what} ${value} is out of range (accepted: ${min} to ${max})`);
  return value;
}

/** A 64-bit address: decimal or 0x-hexadecimal. */
export function parseAddress(text: string, what: string): bigint {
  const t = text.trim();
  if (!/^(0x[0-9a-f]+|\d+)$/i.test(t)) {
    throw new UsageError(`${what} '${text}' is not an address: use decimal or 0x-prefixed hexadecimal`);
  }
  const value = BigInt(t);
  if (value >= 2n ** 64n) throw new UsageError(`${what} ${text} does not fit in 64 bits`);
  return value;
}

function oneOf<T extends string>(text: string, what: string, accepted: readonly T[]): T {
  if (!(accepted as readonly string[]).includes(text)) {
    throw new UsageError(`${what} '${text}' is not accepted (accepted: ${accepted.join(', ')})`);
  }
  return text as T;
}

function parse<O extends typeof RUN_OPTIONS | typeof EXPLAIN_OPTIONS>(
  command: string,
  argv: string[],
  options: O,
) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new UsageError(`${message.replace(/\. To specify a positional.*$/s, '')} (in 'vmm ${command}')`);
  }
}

function runConfig(
  values: Record<string, string | boolean | string[] | undefined>,
): Omit<RunConfig, 'command'> {
  const mem = values.mem === undefined ? DEFAULTS.mem : parseSize(values.mem as string, '--mem');
  if (mem < MIN_MEM || mem > MAX_MEM) {
    throw new UsageError(`--mem ${values.mem} is out of range (accepted: 4M to 16G)`);
  }
  if (mem % 4096 !== 0) throw new UsageError(`--mem ${values.mem} is not a multiple of 4K`);
  const iommu = oneOf((values.iommu as string | undefined) ?? DEFAULTS.iommu, '--iommu', ['virtio', 'none']);
  const nestedText = (values.nested as string | undefined) ?? (iommu === 'none' ? 'off' : DEFAULTS.nested);
  // `name` or `name:pgtable` (a PASID-table vendor and the page-table format of its contexts).
  if (!/^[a-z][a-z0-9-]*(:[a-z][a-z0-9-]*)?$/.test(nestedText)) {
    throw new UsageError(
      `--nested '${nestedText}' is not accepted (accepted: off, arm, or a format a --plugin registers, as name[:pgtable])`,
    );
  }
  if (iommu === 'none' && nestedText !== 'off') {
    throw new UsageError(
      `--nested ${nestedText} needs --iommu virtio (with --iommu none there are no stage-1 tables)`,
    );
  }
  const pasidsGiven = values.pasids !== undefined;
  const pasids = pasidsGiven
    ? parseInteger(values.pasids as string, '--pasids', 1, MAX_PASIDS)
    : DEFAULTS.pasids;
  if (pasidsGiven && nestedText === 'off') {
    throw new UsageError(
      '--pasids needs a nested PASID table (--iommu virtio --nested arm or a plugin vendor)',
    );
  }
  return {
    mem,
    cpus: values.cpus === undefined ? DEFAULTS.cpus : parseInteger(values.cpus as string, '--cpus', 1, 64),
    iommu,
    nested: nestedText,
    pasids,
    pasidsGiven,
    plugins: (values.plugin as string[] | undefined) ?? [],
    mode: oneOf((values.mode as string | undefined) ?? DEFAULTS.mode, '--mode', ['worker', 'inline']),
    json: values.json === true,
  };
}

/** Parses `vmm <command> [options]`; throws `UsageError` for anything not accepted. */
export function parseCommandLine(argv: readonly string[]): CliCommand {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    return { command: 'help', ...(rest[0] ? { topic: rest[0] } : {}) };
  }
  if (command === '--version' || command === '-V') return { command: 'version' };
  if (command === 'run') {
    const { values } = parse('run', rest, RUN_OPTIONS);
    if (values.help) return { command: 'help', topic: 'run' };
    return { command: 'run', ...runConfig(values) };
  }
  if (command === 'explain') {
    const { values } = parse('explain', rest, EXPLAIN_OPTIONS);
    if (values.help) return { command: 'help', topic: 'explain' };
    if (values.iova === undefined) {
      throw new UsageError(
        'vmm explain needs --iova A, and --pasid P for a PASID table (e.g. vmm explain --pasid 1 --iova 0x40000000)',
      );
    }
    const config = runConfig(values);
    if (config.nested === 'off') {
      throw new UsageError(
        'vmm explain shows a nested stage-1 walk: it needs --nested arm (or a plugin vendor)',
      );
    }
    return {
      command: 'explain',
      ...config,
      pasid: values.pasid === undefined ? null : parseInteger(values.pasid, '--pasid', 0, 2 ** 20 - 1),
      iova: parseAddress(values.iova, '--iova'),
    };
  }
  throw new UsageError(`unknown command '${command}' (accepted: run, explain, help)`);
}
