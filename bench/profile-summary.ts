/**
 * `npx tsx bench/profile-summary.ts <file.cpuprofile> [top]`: where the CPU time went in a
 * `node --cpu-prof` profile — self time by function and by package/area, as plain text, so a
 * scenario's notes can say what bounds it without opening DevTools.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** Groups a script URL into an area people recognise: a package, node internals, or a project folder. */
export function area(url: string): string {
  if (!url) return '(native / idle / gc)';
  if (url.startsWith('node:')) return 'node internals';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  const proj = /\/(core|gateway|processors|read-model|ack-service|bench|scripts|tests)\//.exec(url);
  return proj ? `project: ${proj[1]}` : url.replace(/^file:\/\//, '');
}

/**
 * Busy time (every sample but `(idle)`) per `stepS` seconds from the profile's start: where the
 * load was in a profile that also holds startup and shutdown.
 */
export function timeline(profile: CpuProfile, stepS = 5): string {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const busy: number[] = [];
  let t = 0;
  profile.samples.forEach((id, i) => {
    t += profile.timeDeltas[i] ?? 0;
    if (byId.get(id)?.callFrame.functionName === '(idle)') return;
    const slot = Math.floor(t / 1e6 / stepS);
    busy[slot] = (busy[slot] ?? 0) + (profile.timeDeltas[i] ?? 0);
  });
  return Array.from(busy, (us, i) => `${i * stepS}s ${(((us ?? 0) / 1e6 / stepS) * 100).toFixed(0)}%`).join(' · ');
}

/** Self time; with `window` ([from, to) seconds after the profile's start) only the samples in it, `(idle)` apart. */
export function summarize(profile: CpuProfile, top = 15, window?: { fromS: number; toS: number }): string {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  let t = 0;
  profile.samples.forEach((id, i) => {
    t += profile.timeDeltas[i] ?? 0;
    if (window && (t < window.fromS * 1e6 || t >= window.toS * 1e6)) return;
    self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  if (window) for (const [id] of self) if (byId.get(id)?.callFrame.functionName === '(idle)') self.delete(id);
  const total = [...self.values()].reduce((a, b) => a + b, 0) || 1;
  const fn = new Map<string, number>();
  const areas = new Map<string, number>();
  for (const [id, us] of self) {
    const n = byId.get(id)!;
    const { functionName, url, lineNumber } = n.callFrame;
    const key = `${functionName || '(anonymous)'} ${url ? `${url.replace(/^.*\/(node_modules\/)?/, '')}:${lineNumber + 1}` : ''}`.trim();
    fn.set(key, (fn.get(key) ?? 0) + us);
    areas.set(area(url), (areas.get(area(url)) ?? 0) + us);
  }
  const table = (m: Map<string, number>) =>
    [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, us]) => `${((us / total) * 100).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(7)} ms  ${k}`).join('\n');
  const span = window ? `${window.fromS}–${window.toS} s: ${(total / 1e6).toFixed(1)} s busy (${((total / 1e6 / (window.toS - window.fromS)) * 100).toFixed(1)} % of a core)` : `${(total / 1e6).toFixed(1)} s sampled`;
  return `profile: ${((profile.endTime - profile.startTime) / 1e6).toFixed(1)} s wall, ${span}\n\nself time by area:\n${table(areas)}\n\nself time by function:\n${table(fn)}\n`;
}

if (require.main === module) {
  const [file, top, from, to] = process.argv.slice(2);
  if (!file) {
    process.stderr.write('usage: npx tsx bench/profile-summary.ts <file.cpuprofile> [top] [fromS toS]\n');
    process.exit(2);
  }
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  process.stdout.write(`busy per 5 s: ${timeline(profile)}\n`);
  process.stdout.write(summarize(profile, Number(top ?? 15), from !== undefined && to !== undefined ? { fromS: Number(from), toS: Number(to) } : undefined));
}
