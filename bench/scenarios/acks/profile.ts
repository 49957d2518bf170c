/**
 * CPU profile of the measured window only (not startup or connecting), for the acks bench children:
 * started and stopped through node:inspector, written as <dir>/<name>-<pid>.cpuprofile for
 * bench/profile-summary.ts. No-op when ACK_BENCH_PROFILE is not set.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import path from 'node:path';

export function windowProfiler(name: string) {
  const dir = process.env.ACK_BENCH_PROFILE;
  if (!dir) return { start: async () => undefined, stop: async () => undefined };
  const session = new Session();
  session.connect();
  const post = (method: string) => new Promise<unknown>((res, rej) => session.post(method, (err, out) => (err ? rej(err) : res(out))));
  return {
    async start() {
      await post('Profiler.enable');
      await post('Profiler.start');
    },
    async stop() {
      const { profile } = (await post('Profiler.stop')) as { profile: unknown };
      writeFileSync(path.join(dir, `${name}-${process.pid}.cpuprofile`), JSON.stringify(profile));
    },
  };
}
