import os from 'node:os';

/** The machine a run was measured on: figures from different machines do not compare. */
export interface MachineInfo {
  cpuModel: string;
  cores: number;
  /** 1, 5 and 15 minute load averages when the benchmark ended, and when it started. */
  loadAverage: number[];
  loadAverageAtStart?: number[];
  totalMemoryMb: number;
  node: string;
  platform: string;
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    loadAverage: loadAverage(),
    totalMemoryMb: Math.round(os.totalmem() / 2 ** 20),
    node: process.version,
    platform: `${process.platform}-${process.arch} ${os.release()}`,
  };
}

/** os.loadavg() to two decimals. */
export function loadAverage(): number[] {
  return os.loadavg().map((load) => Math.round(load * 100) / 100);
}
