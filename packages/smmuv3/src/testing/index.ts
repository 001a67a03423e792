// Fakes and builders for tests of code that uses the arm vendor (conformance suites included).
export {
  BumpAllocator,
  createRam,
  DEFAULT_LEAF_ATTRS,
  Leaf,
  linuxCd,
  linuxSte,
  RAM_BASE,
  S1Tables,
  tg0Of,
  writeCd,
} from './host-tables.js';
export type { LpaeFixture, LpaeFixtureOptions, TlbCall, WalkStep } from './lpae-fixture.js';
export {
  dirtyAllocator,
  guestRam,
  leafOf,
  lpaeFixture,
  RecordingTlb,
  referenceWalk,
  TABLE_REGION_BASE,
} from './lpae-fixture.js';
export type { BareTlb, ScatteredTables } from './scattered-tables.js';
export {
  bareLpaeWalk,
  bareTlb,
  SCATTERED_ASID,
  SCATTERED_IOVA,
  SCATTERED_PA,
  SCATTERED_PAGES,
  SCATTERED_RAM,
  scatteredIovas,
  scatteredTables,
  xorshift,
} from './scattered-tables.js';
