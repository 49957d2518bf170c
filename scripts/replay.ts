/** `npm run replay -- <command>`: rebuild, verify, reprocess, status (see docs/RUNBOOK.md). */
import { runMain } from '../core/config';
import { runReplay } from '../processors/replay/cli';

runMain(async () => {
  process.exitCode = await runReplay(process.argv.slice(2));
});
