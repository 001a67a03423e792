/**
 * Starting a vCPU worker from TypeScript sources (tests, `tsx` runs). Node 20 workers ignore
 * `--import tsx` for their entry point, so a `.ts` entry is wrapped in a tiny bootstrap that
 * registers tsx, then a resolve hook mapping `@vmmkit/<pkg>` to `packages/<pkg>/src` (what
 * vitest's aliases do on the host thread), then imports the entry. Built workers (`dist/*.js`)
 * start directly and resolve the packages' `dist` exports.
 */
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

const packagesRoot = pathToFileURL(fileURLToPath(new URL('../../../', import.meta.url))).href;

// Runs on Node's loader thread, so it is a self-contained module shipped as a data: URL.
const resolveHook = `
const root = ${JSON.stringify(packagesRoot)};
export async function resolve(specifier, context, next) {
  const match = /^@vmmkit\\/([a-z0-9-]+)(\\/testing)?$/.exec(specifier);
  if (match !== null) {
    return next(root + match[1] + (match[2] ? '/src/testing/index.ts' : '/src/index.ts'), context);
  }
  return next(specifier, context);
}
`;

function dataUrl(code: string): string {
  return `data:text/javascript,${encodeURIComponent(code)}`;
}

function tsxApiUrl(): string {
  // The CommonJS entry sits beside the ESM one; the worker needs the ESM `register`.
  const cjs = createRequire(import.meta.url).resolve('tsx/esm/api');
  return pathToFileURL(cjs.replace(/index\.cjs$/, 'index.mjs')).href;
}

/** What to hand `new Worker()` for `entry`: the entry itself when it is JavaScript, a tsx bootstrap for `.ts`. */
export function workerEntry(entry: URL): URL {
  if (!entry.pathname.endsWith('.ts')) return entry;
  const bootstrap = [
    `import { register as registerTsx } from ${JSON.stringify(tsxApiUrl())};`,
    `import { register } from 'node:module';`,
    'registerTsx();',
    `register(${JSON.stringify(dataUrl(resolveHook))});`,
    `await import(${JSON.stringify(entry.href)});`,
  ].join('\n');
  return new URL(dataUrl(bootstrap));
}
