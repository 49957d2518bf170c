/** `npm run replay -- <command>`: rebuild, verify, reprocess, status (see docs/RUNBOOK.md). */
import { ConfigError } from '../core/errors';
import { runMain } from '../core/config';
import { runReplay } from '../processors/replay/cli';
import { DATA_DIR } from './local-stack';
import { operatorEnv } from './local-settings';

runMain(async () => {
  // The environment's settings when it sets DATABASE_URL, else the running `npm start`'s.
  const env = operatorEnv(process.env, DATA_DIR);
  const command = process.argv[2] ?? '';
  if (env.ACKSTREAM_SINGLE_NODE && !['status', 'verify', 'help', ''].includes(command)) {
    throw new ConfigError(`replay ${command} writes the read model in Redis, and the local stack runs single-node (no Redis: it lives inside the npm start process). Install redis-server and restart npm start.`);
  }
  process.exitCode = await runReplay(process.argv.slice(2), env);
});
