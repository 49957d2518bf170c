/**
 * How Linux schedules a process or thread, from /proc (fields 19 and 41 of its stat): its niceness
 * and whether it is in the idle scheduling class (policy 5, SCHED_IDLE). For the tests of what the
 * local stack runs at a lower priority (emulators' compactions, Redis's rewrite child).
 */
import { readdirSync, readFileSync } from 'node:fs';

export interface Scheduling {
  nice: number;
  idle: boolean;
  /** The policy number: 0 SCHED_OTHER, 5 SCHED_IDLE. */
  policy: number;
}

/** Of one process (`tid` omitted) or one of its threads. */
export function schedulingOf(pid: number, tid = pid): Scheduling {
  const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const policy = Number(f[38]);
  return { nice: Number(f[16]), idle: policy === 5, policy };
}

/** Of every thread of `pid` (one that ends while read is left out). */
export function threadsOf(pid: number): Scheduling[] {
  return readdirSync(`/proc/${pid}/task`).flatMap((tid) => {
    try {
      return [schedulingOf(pid, Number(tid))];
    } catch {
      return [];
    }
  });
}
