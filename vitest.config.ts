import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const root = fileURLToPath(new URL('.', import.meta.url));
const packages = ['core', 'smmuv3', 'virtio-iommu', 'vmm'] as const;

// Tests run against the TypeScript sources of sibling packages, so no build is needed first.
const alias = packages.flatMap((name) => [
  { find: `@vmmkit/${name}/testing`, replacement: `${root}packages/${name}/src/testing/index.ts` },
  { find: `@vmmkit/${name}`, replacement: `${root}packages/${name}/src/index.ts` },
]);

export default defineConfig({
  resolve: { alias },
  test: {
    projects: [
      ...packages.map((name) => ({
        extends: true as const,
        test: {
          name,
          include: [`packages/${name}/src/**/*.test.ts`],
          benchmark: { include: [`packages/${name}/src/**/*.bench.ts`] },
        },
      })),
      {
        extends: true as const,
        test: {
          name: 'hostile',
          include: ['fuzz/src/**/*.test.ts'],
          benchmark: { include: [] },
        },
      },
      {
        extends: true as const,
        test: {
          name: 'examples',
          include: ['examples/*/src/**/*.test.ts'],
          benchmark: { include: [] },
        },
      },
    ],
    testTimeout: 30_000,
  },
});
