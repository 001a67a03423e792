/** Child process of the report: runs one measure and prints its result as one JSON line. */
import { measures } from './measures/index.js';

const id = process.argv[2];
const measure = measures.find((m) => m.id === id);
if (!measure) {
  console.error(`unknown measure '${id}'; known: ${measures.map((m) => m.id).join(', ')}`);
  process.exit(2);
}
const result = await measure.run();
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
