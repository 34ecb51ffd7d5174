import { readFile } from 'node:fs/promises';

// utime and stime in /proc/<pid>/stat are in clock ticks; USER_HZ is 100 on every Linux that Node supports.
const CLOCK_TICKS_PER_SECOND = 100;

/** CPU time (user + system, ms) that process `pid` has used so far, from /proc/<pid>/stat. */
export async function cpuTimeMs(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces and parentheses: count fields after its closing ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return ((utime + stime) * 1000) / CLOCK_TICKS_PER_SECOND;
}

/** Resident set size (MB) of process `pid` now, from /proc/<pid>/status. */
export async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  return match ? Number(match[1]) / 1024 : Number.NaN;
}

/** Samples the RSS of `pid` every `intervalMs` until stop() returns the peak (MB). */
export function peakRss(pid: number, intervalMs = 50): { stop(): Promise<number> } {
  let peak = 0;
  const sample = () =>
    rssMb(pid).then(
      (mb) => {
        if (mb > peak) peak = mb;
      },
      () => undefined,
    );
  void sample();
  const timer = setInterval(() => void sample(), intervalMs);
  return {
    async stop() {
      clearInterval(timer);
      await sample();
      return peak;
    },
  };
}
