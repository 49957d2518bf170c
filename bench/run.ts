/**
 * `npm run bench [-- <scenario>...] [--quick] [--out <dir>] [--list]`
 * `npm run bench -- --target gateway=<url>,read=<url>,acks=<ws-url> --token <jwt> [<scenario>...] [--seconds N] [--quick]`
 *
 * Target mode drives the scenarios that can run through the public API against that (deployed)
 * stack instead of servers started here (bench/target.ts); the others are reported as skipped.
 *
 * Runs the scenarios found in bench/scenarios/ (one file each, exporting `run(ctx)`), one after
 * the other, then writes the run's JSON (machine + every figure), a markdown table and SVG plots.
 * Full runs write into bench/results/ (what docs/PERFORMANCE.md embeds); --quick runs are smoke
 * runs and write into a temporary directory unless --out is given.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cliEnv } from '../scripts/cli-env';
import { createProgress } from '../core/progress';
import { scenarioPlots } from './plot';
import { describeMachine, markdownReport, markdownTable, type RunReport } from './report';
import { parseTarget, SKIPPED_IN_TARGET_MODE, TARGET_SCENARIOS, type BenchTarget } from './target';
import type { BenchContext, Scenario, ScenarioResult } from './types';

export const SCENARIO_DIR = path.join(__dirname, 'scenarios');
export const RESULTS_DIR = path.join(__dirname, 'results');
/** The whole system first (as users run it), then the components; scenarios not listed here run after these, alphabetically. */
const PREFERRED_ORDER = ['system', 'writes', 'pipeline', 'acks', 'reads', 'mixed', 'replay'];

export function discoverScenarios(dir = SCENARIO_DIR): string[] {
  if (!existsSync(dir)) return [];
  const names = readdirSync(dir)
    .filter((f) => /^[a-z0-9][a-z0-9-]*\.ts$/i.test(f) && !f.endsWith('.d.ts'))
    .map((f) => f.slice(0, -3));
  const rank = (n: string) => {
    const i = PREFERRED_ORDER.indexOf(n);
    return i < 0 ? PREFERRED_ORDER.length : i;
  };
  return names.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

interface Args {
  names: string[];
  quick: boolean;
  out: string | undefined;
  list: boolean;
  /** --target gateway=..,read=..,acks=.. */
  target: string | undefined;
  token: string | undefined;
  /** Target mode: seconds per load phase. */
  seconds: number | undefined;
}

export function parseArgs(argv: string[]): Args {
  const args: Args = { names: [], quick: false, out: undefined, list: false, target: undefined, token: undefined, seconds: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quick') args.quick = true;
    else if (a === '--target' || a === '--token' || a === '--seconds') {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      if (a === '--target') args.target = v;
      else if (a === '--token') args.token = v;
      else {
        args.seconds = Number(v);
        if (!(args.seconds > 0)) throw new Error('--seconds must be a positive number');
      }
    }
    else if (a === '--list') args.list = true;
    else if (a === '--out') args.out = argv[++i];
    else if (a.startsWith('--out=')) args.out = a.slice(6);
    else if (a.startsWith('-')) throw new Error(`Unknown option ${a}; use [scenario...] [--quick] [--out <dir>] [--list] [--target gateway=<url>,read=<url>,acks=<ws-url> --token <jwt> [--seconds N]].`);
    else args.names.push(a);
  }
  return args;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms / 1000}s`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Keeps the other scenarios of an earlier run on the same commit, so runs of one scenario accumulate. */
function mergeWithEarlier(file: string, report: RunReport): RunReport {
  if (!existsSync(file)) return report;
  try {
    const earlier = JSON.parse(readFileSync(file, 'utf8')) as RunReport;
    if (earlier.quick !== report.quick) return report;
    const mine = new Set([...report.results.map((r) => r.scenario), ...report.failures.map((f) => f.scenario)]);
    return {
      ...report,
      results: [...earlier.results.filter((r) => !mine.has(r.scenario)), ...report.results],
      failures: [...earlier.failures.filter((f) => !mine.has(f.scenario)), ...report.failures],
    };
  } catch {
    return report;
  }
}

export async function main(argv = process.argv.slice(2)): Promise<number> {
  const args = parseArgs(argv);
  if (args.target) return mainTarget(args);
  const available = discoverScenarios();
  if (args.list) {
    process.stdout.write(`${available.join('\n')}\n`);
    return 0;
  }
  const unknown = args.names.filter((n) => !available.includes(n));
  if (unknown.length) {
    process.stderr.write(`Unknown scenario(s): ${unknown.join(', ')}. Available: ${available.join(', ') || '(none)'}\n`);
    return 2;
  }
  const names = args.names.length ? args.names : available;
  if (!names.length) {
    process.stderr.write(`No scenarios in ${SCENARIO_DIR}\n`);
    return 2;
  }
  const outDir = path.resolve(args.out ?? (args.quick ? path.join(os.tmpdir(), 'ackstream-bench-quick') : RESULTS_DIR));
  mkdirSync(outDir, { recursive: true });

  const machine = describeMachine();
  process.stderr.write(`[bench] ${names.length} scenario(s): ${names.join(', ')}${args.quick ? ' (--quick smoke run)' : ''}; ${machine.cpu}, ${machine.cores} cores, Node ${machine.node}, commit ${machine.commit}\n`);
  const results: ScenarioResult[] = [];
  const failures: RunReport['failures'] = [];
  for (const name of names) {
    const { ctx, finish } = scenarioContext(name, args.quick);
    try {
      // require, not import(): the project is CommonJS, and this also works under `node --require tsx/cjs` (profiling).
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const mod = require(path.join(SCENARIO_DIR, `${name}.ts`)) as { run?: Scenario; timeouts?: { quickMs: number; fullMs: number } };
      if (typeof mod.run !== 'function') throw new Error(`bench/scenarios/${name}.ts does not export run(ctx)`);
      // Scenarios bound themselves; this only stops a hung one from holding the whole run.
      const result = await withTimeout(mod.run(ctx), args.quick ? (mod.timeouts?.quickMs ?? 60_000) : (mod.timeouts?.fullMs ?? 20 * 60_000), name);
      results.push({ ...result, scenario: result.scenario || name });
      finish(true);
    } catch (err) {
      finish(false);
      const error = err instanceof Error ? (err.stack ?? err.message) : String(err);
      process.stderr.write(`${error}\n`);
      failures.push({ scenario: name, error: error.split('\n')[0]! });
    }
  }

  const stem = `${machine.date.slice(0, 10)}-${machine.commit}`;
  const jsonFile = path.join(outDir, `${stem}.json`);
  const report = mergeWithEarlier(jsonFile, { machine, quick: args.quick, failures, results });
  const plots: string[] = [];
  for (const r of results) {
    for (const p of scenarioPlots(r)) {
      writeFileSync(path.join(outDir, p.file), `${p.svg}\n`);
      plots.push(p.file);
    }
  }
  writeFileSync(jsonFile, `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(path.join(outDir, `${stem}.md`), markdownReport(report, plots));
  process.stdout.write(`\n${markdownTable(results)}\n\n`);
  process.stdout.write(`[bench] wrote ${path.relative(process.cwd(), jsonFile)}, ${stem}.md and ${plots.length} plot(s) in ${path.relative(process.cwd(), outDir) || '.'}\n`);
  return failures.length ? 1 : 0;
}

/** Target mode: the public-API scenarios against a running stack; the rest are listed as skipped. */
async function mainTarget(args: Args): Promise<number> {
  let target: BenchTarget;
  try {
    target = parseTarget(args.target!, args.token ?? cliEnv().TOKEN);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 2;
  }
  const available = discoverScenarios();
  const known = [...new Set([...available, ...Object.keys(TARGET_SCENARIOS)])];
  const unknown = args.names.filter((n) => !known.includes(n));
  if (unknown.length) {
    process.stderr.write(`Unknown scenario(s): ${unknown.join(', ')}. Available: ${known.join(', ')}\n`);
    return 2;
  }
  const names = args.names.length ? args.names : known;
  const seconds = args.seconds ?? (args.quick ? 3 : 30);
  // Never into bench/results/: those are this machine's figures that docs/PERFORMANCE.md embeds.
  const outDir = path.resolve(args.out ?? path.join(os.tmpdir(), 'ackstream-bench-target'));
  mkdirSync(outDir, { recursive: true });
  const machine = describeMachine();
  process.stderr.write(`[bench] target mode: gateway ${target.gatewayUrl}, read ${target.readUrl}, acks ${target.ackUrl}; ${seconds}s per load phase; load from ${machine.cpu}, ${machine.cores} cores\n`);
  const results: ScenarioResult[] = [];
  const failures: RunReport['failures'] = [];
  const skipped: Array<{ scenario: string; reason: string }> = [];
  for (const name of names) {
    const scenario = TARGET_SCENARIOS[name];
    if (!scenario) {
      const reason = SKIPPED_IN_TARGET_MODE[name] ?? 'needs local internals (servers, emulators or databases it starts itself)';
      skipped.push({ scenario: name, reason });
      process.stderr.write(`[bench] ${name}: skipped in target mode: ${reason}\n`);
      continue;
    }
    const { ctx, finish } = scenarioContext(name, args.quick);
    try {
      results.push(await withTimeout(scenario(ctx, target, { seconds, quick: args.quick }), (seconds * 5 + 120) * 1000, name));
      finish(true);
    } catch (err) {
      finish(false);
      const error = err instanceof Error ? err.message : String(err);
      process.stderr.write(`[bench] ${name} failed: ${error}\n`);
      failures.push({ scenario: name, error: error.split('\n')[0]! });
    }
  }
  const stem = `${machine.date.replace(/[:.]/g, '-')}-target`;
  const report = { machine, quick: args.quick, target: { gateway: target.gatewayUrl, read: target.readUrl, acks: target.ackUrl }, failures, skipped, results };
  const jsonFile = path.join(outDir, `${stem}.json`);
  writeFileSync(jsonFile, `${JSON.stringify(report, null, 2)}\n`);
  const md = markdownReport(report, []) + skipped.map((s) => `\n**${s.scenario} skipped in target mode:** ${s.reason}\n`).join('');
  writeFileSync(path.join(outDir, `${stem}.md`), md);
  process.stdout.write(`\n${markdownTable(results)}\n\n`);
  process.stdout.write(`[bench] wrote ${jsonFile} and ${stem}.md\n`);
  return failures.length ? 1 : 0;
}

if (require.main === module) {
  main().then(
    // Scenarios may leave sockets or timers behind; the run is over, so leave.
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(2);
    },
  );
}

/** One scenario's progress line and context, the same in local and target mode. */
function scenarioContext(name: string, quick: boolean): { ctx: BenchContext; finish: (ok: boolean) => void } {
  const started = Date.now();
  const progress = createProgress({ label: `[bench] ${name}`, unit: '' }); // scenarios count in mixed units
  return {
    ctx: { quick, progress: (done, total, label) => progress.update(done, total, label), log: (line) => progress.log(line) },
    finish: (ok) => progress.log(`${ok ? 'done' : 'FAILED'} in ${((Date.now() - started) / 1000).toFixed(1)}s`),
  };
}
