import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { resolvePluginModule } from './plugins.js';
import { esmConditions, resolvePackageEntry } from './resolve-package.js';

const root = realpathSync(mkdtempSync(join(tmpdir(), 'vmm-resolve-')));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Writes an installed package under `<root>/node_modules/<name>` with the given manifest and files. */
function install(name: string, manifest: object, files: string[]) {
  const dir = join(root, 'node_modules', name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, ...manifest }));
  for (const file of files) {
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    writeFileSync(join(dir, file), 'export {};\n');
  }
  return dir;
}

const app = join(root, 'app', 'deep');
mkdirSync(app, { recursive: true });
const esm = new Set(['node', 'import', 'default']);

describe('finding an installed plugin package the way import would', () => {
  it('follows exports with only an import condition (what require.resolve cannot)', () => {
    const dir = install(
      '@acme/vendor',
      { exports: { '.': { types: './x.d.ts', import: './dist/index.js' }, './extra': './dist/extra.js' } },
      ['dist/index.js', 'dist/extra.js'],
    );
    expect(resolvePackageEntry('@acme/vendor', app, esm)).toBe(join(dir, 'dist/index.js'));
    expect(resolvePackageEntry('@acme/vendor/extra', app, esm)).toBe(join(dir, 'dist/extra.js'));
    expect(resolvePackageEntry('@acme/vendor/hidden', app, esm)).toBeNull();
    expect(resolvePluginModule('@acme/vendor', app)).toBe(`file://${join(dir, 'dist/index.js')}`);
  });

  it('matches conditions in the order the package lists them, nested ones and arrays included', () => {
    const dir = install(
      'cond',
      {
        exports: { require: './c.cjs', node: { custom: './custom.js', import: './n.js' }, default: './d.js' },
      },
      ['c.cjs', 'custom.js', 'n.js', 'd.js'],
    );
    expect(resolvePackageEntry('cond', app, esm)).toBe(join(dir, 'n.js'));
    expect(resolvePackageEntry('cond', app, new Set([...esm, 'custom']))).toBe(join(dir, 'custom.js'));
    const arr = install('arr', { exports: [{ worker: './w.js' }, './a.js'] }, ['a.js']);
    expect(resolvePackageEntry('arr', app, esm)).toBe(join(arr, 'a.js'));
  });

  it('falls back to main, then index.js, and gives up on what does not exist', () => {
    const main = install('with-main', { main: 'lib/main.js' }, ['lib/main.js']);
    expect(resolvePackageEntry('with-main', app, esm)).toBe(join(main, 'lib/main.js'));
    const bare = install('bare', {}, ['index.js']);
    expect(resolvePackageEntry('bare', app, esm)).toBe(join(bare, 'index.js'));
    install('broken-main', { main: 'missing.js' }, []);
    expect(resolvePackageEntry('broken-main', app, esm)).toBeNull();
    expect(resolvePackageEntry('not-installed', app, esm)).toBeNull();
    expect(resolvePackageEntry('', app, esm)).toBeNull();
    expect(() => resolvePluginModule('not-installed', app)).toThrow(/cannot be found from .*app/);
  });

  it('finds this workspace package from the repository root, by its source condition', () => {
    const repo = fileURLToPath(new URL('../../../../', import.meta.url));
    const entry = resolvePackageEntry('@vmmkit/smmuv3', repo, new Set([...esm, '@vmmkit/source']));
    expect(entry).toBe(join(repo, 'packages/smmuv3/src/index.ts'));
  });

  it('reads --conditions from the process flags', () => {
    const saved = process.env.NODE_OPTIONS;
    process.env.NODE_OPTIONS = '--conditions=alpha -C beta';
    try {
      expect([...esmConditions()]).toEqual(expect.arrayContaining(['import', 'node', 'alpha', 'beta']));
    } finally {
      if (saved === undefined) delete process.env.NODE_OPTIONS;
      else process.env.NODE_OPTIONS = saved;
    }
  });
});
