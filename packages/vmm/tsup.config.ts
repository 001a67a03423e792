import { defineConfig } from 'tsup';

export default defineConfig({
  // vcpu-worker and demo-guest are loaded by URL (worker threads, guest programs), so they are
  // entries of their own and sit beside the chunks that refer to them.
  entry: ['src/index.ts', 'src/testing/index.ts', 'src/cli.ts', 'src/vcpu-worker.ts', 'src/demo-guest.ts'],
  format: ['esm'],
  dts: { entry: ['src/index.ts', 'src/testing/index.ts'] },
  clean: true,
  sourcemap: true,
  target: 'node20',
});
