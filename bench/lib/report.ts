import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { machineInfo, type MachineInfo } from './machine.js';
import { RESULTS_DIR } from './paths.js';
import { round, type Measurement } from './stats.js';

/** One path measured against one floor: the floor runs just before and just after the project, same run. */
export interface Comparison {
  /** What was measured, e.g. `GET /api/me, 100 connections`. */
  label: string;
  project: Measurement;
  floor: { name: string; before: Measurement; after: Measurement };
}

/** What a benchmark returns; the runner adds machine, ratios and timing, and writes the JSON. */
export interface BenchOutcome {
  /** The benchmark's parameters (grants, seconds, connections...), for the record. */
  params: Record<string, unknown>;
  comparisons: Comparison[];
  notes?: string[];
}

/** bench/results/<name>.json. */
export interface BenchResult extends BenchOutcome {
  name: string;
  quick: boolean;
  startedAt: string;
  durationSeconds: number;
  machine: MachineInfo;
  /** Per comparison label: project figure / mean of the two floor figures, for each figure both have. */
  ratios: Record<string, Measurement>;
}

/** The mean of the floor before and after, figure by figure (a figure missing on one side is taken from the other). */
export function floorMean(floor: Comparison['floor']): Measurement {
  const mean: Measurement = {};
  for (const key of new Set([...Object.keys(floor.before), ...Object.keys(floor.after)])) {
    const values = [floor.before[key], floor.after[key]].filter((value) => Number.isFinite(value));
    mean[key] = values.length === 0 ? Number.NaN : values.reduce((a, b) => a + b, 0) / values.length;
  }
  return mean;
}

/** project / floor mean for every figure both have (a non-zero floor). */
export function ratiosOf(comparison: Comparison): Measurement {
  const floor = floorMean(comparison.floor);
  const ratios: Measurement = {};
  for (const [key, value] of Object.entries(comparison.project)) {
    if (Number.isFinite(value) && Number.isFinite(floor[key]) && floor[key] !== 0)
      ratios[key] = round(value / floor[key]);
  }
  return ratios;
}

/** The JSON of one run; `loadAtStart` is loadAverage() when the benchmark started. */
export function resultOf(
  name: string,
  quick: boolean,
  run: { startedAt: Date; loadAtStart: number[] },
  outcome: BenchOutcome,
): BenchResult {
  const { startedAt } = run;
  const ratios: Record<string, Measurement> = {};
  for (const comparison of outcome.comparisons) ratios[comparison.label] = ratiosOf(comparison);
  return {
    name,
    quick,
    startedAt: startedAt.toISOString(),
    durationSeconds: round((Date.now() - startedAt.getTime()) / 1000),
    machine: { ...machineInfo(), loadAverageAtStart: run.loadAtStart },
    ...outcome,
    ratios,
  };
}

/** Writes bench/results/<name>.json and returns its path. */
export async function writeResult(result: BenchResult, dir = RESULTS_DIR): Promise<string> {
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `${result.name}.json`);
  await writeFile(file, `${JSON.stringify(result, null, 2)}\n`);
  return file;
}

/** A plain-text table: one row per figure of each comparison (project, floor before, after, ratio). */
export function formatTable(result: BenchResult): string {
  const rows: string[][] = [['path', 'figure', 'project', 'floor', 'before', 'after', 'ratio']];
  for (const comparison of result.comparisons) {
    const { before, after } = comparison.floor;
    const ratios = result.ratios[comparison.label];
    for (const key of Object.keys(comparison.project)) {
      rows.push([
        comparison.label,
        key,
        show(comparison.project[key]),
        comparison.floor.name,
        show(before[key]),
        show(after[key]),
        showRatio(ratios[key]),
      ]);
    }
  }
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)));
  const line = (row: string[]) => `| ${row.map((cell, column) => cell.padEnd(widths[column])).join(' | ')} |`;
  const { machine } = result;
  return [
    `${result.name}${result.quick ? ' (quick)' : ''}: ${machine.cpuModel}, ${machine.cores} cores, ` +
      `load ${machine.loadAverageAtStart?.join(' ') ?? '?'} at start, ${machine.loadAverage.join(' ')} at end, ` +
      `node ${machine.node}`,
    line(rows[0]),
    `|${widths.map((width) => '-'.repeat(width + 2)).join('|')}|`,
    ...rows.slice(1).map(line),
    ...(result.notes ?? []).map((note) => `  note: ${note}`),
  ].join('\n');
}

/** `2.5x`, or `1/68` below 0.1 (a throughput far under its floor). */
function showRatio(ratio: number | undefined): string {
  if (ratio === undefined) return '';
  return ratio > 0 && ratio < 0.1 ? `1/${Math.round(1 / ratio)}` : `${show(ratio)}x`;
}

function show(value: number | undefined): string {
  if (value === undefined) return '';
  if (!Number.isFinite(value)) return String(value);
  return round(value).toLocaleString('en-US', { maximumFractionDigits: 3 });
}
