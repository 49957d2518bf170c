/**
 * A process's line in /proc/<pid>/stat (Linux), read once here for every bench that measures CPU
 * from /proc. CPU times are in clock ticks (USER_HZ, 1/100 s on Linux).
 */
import { readFileSync } from 'node:fs';

export const TICK_MS = 1000 / 100;

export interface ProcStat {
  comm: string;
  ppid: number;
  /** Ticks in user and kernel mode so far (all threads). */
  utime: number;
  stime: number;
  /** Ticks of its children that exited and were waited for. */
  cutime: number;
  cstime: number;
}

/** undefined when the process has exited (or was never there). */
export function procStat(pid: number | string): ProcStat | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm may hold spaces and parentheses: the fields start after the last ')'.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { comm: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), ppid: Number(f[1]), utime: Number(f[11]), stime: Number(f[12]), cutime: Number(f[13]), cstime: Number(f[14]) };
}

/** utime + stime of a process so far, in ticks (NaN once it has exited). */
export function cpuTicksOf(pid: number | string): number {
  const s = procStat(pid);
  return s ? s.utime + s.stime : Number.NaN;
}
