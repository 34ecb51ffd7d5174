import type { Comparison } from './report.js';
import type { Measurement } from './stats.js';

/** Runs the floor, the project, then the floor again (same services), as one comparison. */
export async function bracketed(
  label: string,
  floorName: string,
  floor: () => Promise<Measurement>,
  project: () => Promise<Measurement>,
): Promise<Comparison> {
  const before = await floor();
  const measured = await project();
  const after = await floor();
  return { label, project: measured, floor: { name: floorName, before, after } };
}
