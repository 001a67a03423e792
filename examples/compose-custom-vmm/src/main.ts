/** `pnpm start` in this directory: builds the machine, runs the guest, prints what happened. */
import { composeMachine } from './machine.js';

const machine = await composeMachine(process.argv[2] === 'inline' ? 'inline' : 'worker');
try {
  const report = await machine.run();
  for (const message of machine.mailbox.messages) console.log(`guest says: ${message}`);
  const ok = report.transfers.every((t) => t.verified) && report.isolation.error === 'translation';
  console.log(ok ? 'OK' : 'FAILED', JSON.stringify(report.isolation));
  process.exitCode = ok ? 0 : 1;
} finally {
  await machine.vm.destroy();
}
