/** Renders a benchmark run: machine description and the markdown table of every figure. */
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import type { Figure, ScenarioResult } from './types';

export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  os: string;
  node: string;
  commit: string;
  dirty: boolean;
  date: string;
}

export interface RunReport {
  machine: Machine;
  quick: boolean;
  /** Scenarios that threw: name and message (the run goes on with the others). */
  failures: Array<{ scenario: string; error: string }>;
  results: ScenarioResult[];
}

function git(args: string[]): string {
  try {
    return execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
}

export function describeMachine(now = new Date()): Machine {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    commit: git(['rev-parse', '--short=12', 'HEAD']) || 'unknown',
    dirty: git(['status', '--porcelain', '--untracked-files=no']) !== '',
    date: now.toISOString(),
  };
}

const num = (v: number) => (Number.isInteger(v) ? String(v) : Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2));

function row(scenario: string, f: Figure, kind: string): string {
  const l = f.latency;
  const lat = l ? [l.p50, l.p95, l.p99, l.max].map(num) : ['', '', '', ''];
  return `| ${scenario} | ${kind}${f.name} | ${num(f.value)} | ${f.unit} | ${lat.join(' | ')} |`;
}

export function markdownTable(results: ScenarioResult[]): string {
  const lines = [
    '| scenario | figure | value | unit | p50 ms | p95 ms | p99 ms | max ms |',
    '| --- | --- | ---: | --- | ---: | ---: | ---: | ---: |',
  ];
  for (const r of results) {
    for (const f of r.figures) lines.push(row(r.scenario, f, ''));
    for (const f of r.baseline?.figures ?? []) lines.push(row(r.scenario, f, `baseline (${r.baseline!.name}): `));
    for (const q of r.ratios ?? []) lines.push(`| ${r.scenario} | ratio: ${q.name} | ${num(q.value)} | × |  |  |  |  |`);
  }
  return lines.join('\n');
}

export function markdownReport(report: RunReport, plots: string[]): string {
  const m = report.machine;
  const out = [
    `# Benchmark run ${m.date}`,
    '',
    `Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}; Node ${m.node}; commit ${m.commit}${m.dirty ? ' (uncommitted changes)' : ''}${report.quick ? '; **--quick smoke run, not a measurement**' : ''}.`,
    '',
    markdownTable(report.results),
  ];
  for (const f of report.failures) out.push('', `**${f.scenario} failed:** ${f.error}`);
  for (const r of report.results) {
    if (r.notes?.length) out.push('', `${r.scenario}:`, ...r.notes.map((n) => `- ${n}`));
  }
  if (plots.length) out.push('', ...plots.map((p) => `![${p}](${p})`));
  return `${out.join('\n')}\n`;
}
