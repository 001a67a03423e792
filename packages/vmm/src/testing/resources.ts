/**
 * Handles (workers, ports, timers) open now that were not open in `before`, a snapshot of
 * `process.getActiveResourcesInfo()`: what a machine's teardown left behind. The test runner's
 * own resources that closed meanwhile are simply not counted.
 */
export function resourcesLeftSince(before: readonly string[]): string[] {
  const left = [...before];
  return process.getActiveResourcesInfo().filter((r) => {
    const i = left.indexOf(r);
    if (i < 0) return true;
    left.splice(i, 1);
    return false;
  });
}
