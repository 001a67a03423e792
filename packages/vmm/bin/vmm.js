#!/usr/bin/env node
// The `vmm` command. A committed launcher rather than `dist/cli.js` itself: package managers link
// bins at install time, before a fresh clone has built `dist/` (pnpm warned it could not).
await import('../dist/cli.js');
