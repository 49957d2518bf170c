/**
 * Entry point of the operator task (infra/lib/constructs/operator-task.ts):
 *
 *   ops-run.ts dlq <args…>      same as `npm run dlq -- <args…>`
 *   ops-run.ts replay <args…>   same as `npm run replay -- <args…>`
 *   ops-run.ts idle [seconds]   keeps the task up (default 3600 s) for `aws ecs execute-command`
 *
 * It joins the database parts the task receives into DATABASE_URL (core/db-credentials.ts) and runs
 * the CLI with the task's environment: the same configuration the CLIs read locally.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { withDatabaseUrl } from '../core/db-credentials';

const TOOLS: Record<string, string> = { dlq: 'dlq.ts', replay: 'replay.ts' };
const USAGE = 'usage: ops-run.ts dlq <args…> | replay <args…> | idle [seconds]';

function main(argv: string[]): void {
  const [tool, ...args] = argv;
  if (tool === 'idle') {
    const seconds = Number(args[0] ?? 3600);
    process.stdout.write(`operator task idle for ${seconds} s: aws ecs execute-command --command "node --import tsx scripts/ops-run.ts dlq list"\n`);
    setTimeout(() => process.exit(0), seconds * 1000);
    return;
  }
  const script = tool ? TOOLS[tool] : undefined;
  if (!script) {
    process.stderr.write(`${USAGE}\n`);
    process.exit(2);
  }
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, script), ...args], {
    env: withDatabaseUrl(process.env),
    stdio: 'inherit',
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => child.kill(sig));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}

main(process.argv.slice(2));
