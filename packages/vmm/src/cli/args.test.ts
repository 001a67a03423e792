import { describe, expect, it } from 'vitest';
import { DEFAULTS, parseAddress, parseCommandLine, parseSize, UsageError } from './args.js';

const usage = (argv: string[]) => {
  try {
    parseCommandLine(argv);
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    return (error as Error).message;
  }
  throw new Error(`accepted: ${argv.join(' ')}`);
};

describe('vmm command line', () => {
  it('gives the demo defaults to a bare run', () => {
    expect(parseCommandLine(['run'])).toEqual({
      command: 'run',
      mem: DEFAULTS.mem,
      cpus: 1,
      iommu: 'virtio',
      nested: 'arm',
      pasids: 4,
      pasidsGiven: false,
      plugins: [],
      mode: 'worker',
      json: false,
    });
  });

  it('reads every run option, plugins repeated', () => {
    expect(
      parseCommandLine([
        'run',
        '-m',
        '1G',
        '--cpus=2',
        '--pasids',
        '8',
        '--plugin',
        './a.js',
        '--plugin',
        'pkg',
        '--mode',
        'inline',
        '--json',
      ]),
    ).toMatchObject({
      mem: 2 ** 30,
      cpus: 2,
      pasids: 8,
      plugins: ['./a.js', 'pkg'],
      mode: 'inline',
      json: true,
    });
    expect(parseCommandLine(['run', '--iommu', 'none'])).toMatchObject({ iommu: 'none', nested: 'off' });
    expect(parseCommandLine(['run', '--nested', 'arm:arm-lpae-s1'])).toMatchObject({
      nested: 'arm:arm-lpae-s1',
    });
  });

  it('parses sizes with binary units and addresses in decimal or hex', () => {
    expect(parseSize('256M', 'x')).toBe(256 * 2 ** 20);
    expect(parseSize('65536k', 'x')).toBe(64 * 2 ** 20);
    expect(parseSize('2GiB', 'x')).toBe(2 * 2 ** 30);
    expect(parseSize('4194304', 'x')).toBe(4 * 2 ** 20);
    expect(parseAddress('0xffffffffffffffff', 'x')).toBe(2n ** 64n - 1n);
    expect(parseAddress('4096', 'x')).toBe(4096n);
  });

  it('says what was wrong and what is accepted', () => {
    expect(usage(['run', '--mem', 'lots'])).toMatch(/--mem 'lots' is not a size: .*K, M or G/);
    expect(usage(['run', '--mem', '1M'])).toMatch(/out of range \(accepted: 4M to 16G\)/);
    expect(usage(['run', '--cpus', '0'])).toMatch(/--cpus 0 is out of range \(accepted: 1 to 64\)/);
    expect(usage(['run', '--cpus', 'two'])).toMatch(/not a whole number/);
    expect(usage(['run', '--iommu', 'smmu'])).toMatch(
      /--iommu 'smmu' is not accepted \(accepted: virtio, none\)/,
    );
    expect(usage(['run', '--mode', 'fork'])).toMatch(/accepted: worker, inline/);
    expect(usage(['run', '--iommu', 'none', '--nested', 'arm'])).toMatch(/needs --iommu virtio/);
    expect(usage(['run', '--nested', 'off', '--pasids', '2'])).toMatch(/--pasids needs a nested PASID table/);
    expect(usage(['run', '--pasids', '65'])).toMatch(/accepted: 1 to 64/);
    expect(usage(['run', '--frobnicate'])).toMatch(/^Unknown option '--frobnicate' \(in 'vmm run'\)$/);
    expect(usage(['run', '--nested', 'Arm!'])).toMatch(/accepted: off, arm, .* as name\[:pgtable\]/);
    expect(usage(['run', 'extra'])).toMatch(/Unexpected argument 'extra'/);
    expect(usage(['boot'])).toMatch(/unknown command 'boot' \(accepted: run, explain, help\)/);
    expect(usage(['explain', '--pasid', '1'])).toMatch(/vmm explain needs --iova A/);
    expect(usage(['explain', '--pasid', 'x', '--iova', '0'])).toMatch(/--pasid 'x' is not a whole number/);
    expect(usage(['explain', '--pasid', '1', '--iova', 'zz'])).toMatch(/decimal or 0x-prefixed hexadecimal/);
    expect(usage(['explain', '--pasid', '1', '--iova', '0x10000000000000000'])).toMatch(
      /does not fit in 64 bits/,
    );
    expect(usage(['explain', '--pasid', '1', '--iova', '0', '--nested', 'off'])).toMatch(
      /needs --nested arm/,
    );
  });

  it('leaves --pasid of explain out when not given (a single page table has none)', () => {
    expect(parseCommandLine(['explain', '--iova', '0x1000'])).toMatchObject({ pasid: null, iova: 0x1000n });
    expect(parseCommandLine(['explain', '--iova', '4096', '--pasid', '3'])).toMatchObject({ pasid: 3 });
  });

  it('answers help and version', () => {
    expect(parseCommandLine([])).toEqual({ command: 'help' });
    expect(parseCommandLine(['run', '--help'])).toEqual({ command: 'help', topic: 'run' });
    expect(parseCommandLine(['--version'])).toEqual({ command: 'version' });
  });
});
