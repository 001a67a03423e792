#!/usr/bin/env node
/** The `vmm` command (kvmtool's `lkvm` in spirit): see `vmm --help`. */
import { main } from './cli/main.js';

process.exitCode = await main(process.argv.slice(2), {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
  cwd: process.cwd(),
});
