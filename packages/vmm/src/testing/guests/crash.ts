/** Guest program: fails the way `args.how` says. */
import type { GuestRuntime } from '../../vcpu/guest-runtime.js';

function deepInsideTheGuest(): never {
  throw new RangeError('guest driver tripped over a bad descriptor');
}

export default async function crash(rt: GuestRuntime) {
  const how = (rt.args as { how: string }).how;
  if (how === 'throw') deepInsideTheGuest();
  if (how === 'exit') process.exit(3);
  if (how === 'unclonable') return () => 'functions cannot cross threads';
  return 'fine';
}
