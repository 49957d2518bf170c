/**
 * `npm run acks [-- --acks <ws-url>] [--token <jwt>] [--after <cursor>] [--json]`
 *
 * Tails the caller's acks (queued / committed / rejected) with the project's own client: one line
 * per ack, in cursor order; reconnects resume from the last cursor, so nothing is missed while
 * the connection is down. Ctrl-C stops it.
 *
 * Defaults fit `npm start`: the ack service at ws://127.0.0.1:$ACK_PORT (3002) and the local dev
 * token (tenant "demo", sub "dev", signed with the local secret) unless --token or $TOKEN is given.
 */
import { parseArgs } from 'node:util';
import { createClient, type Ack } from '../client';
import { signToken } from '../core/auth';
import { cliEnv } from './cli-env';
import { localAuthSecret } from './local-stack';

const USAGE = 'usage: npm run acks [-- --acks ws://127.0.0.1:3002] [--token <jwt>] [--after <cursor>] [--json]';

function line(ack: Ack): string {
  const parts = [ack.at?.slice(11, 23) ?? '', `#${String(ack.cursor).padEnd(6)}`, ack.stage.padEnd(9), `${ack.collection}/${ack.id}`];
  if (ack.stage === 'committed') parts.push(`version ${ack.version}`);
  if (ack.stage === 'rejected') parts.push(`${ack.reason?.code}: ${ack.reason?.message}`);
  parts.push(`(request ${ack.requestId})`);
  return parts.join('  ');
}

export async function main(argv = process.argv.slice(2)): Promise<number> {
  const env = cliEnv();
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        acks: { type: 'string', default: `ws://127.0.0.1:${env.ACK_PORT}` },
        token: { type: 'string' },
        after: { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    process.stderr.write(`acks: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const after = values.after === undefined ? 0 : Number(values.after);
  if (!Number.isInteger(after) || after < 0) {
    process.stderr.write(`acks: --after must be a cursor (a whole number >= 0)\n`);
    return 2;
  }
  let token = values.token ?? env.TOKEN;
  let who = 'the given token';
  if (!token) {
    // The same dev token `npm start` prints (and the same secret, kept under .data/).
    token = await signToken(localAuthSecret(), { tenant: 'demo', sub: 'dev', roles: ['operator'], ttlSeconds: 3600 });
    who = 'the local dev token (tenant "demo", sub "dev")';
  }
  const ackUrl = values.acks;
  let connectedOnce = false;
  let refused = false;
  let isOpen = false;
  let lastError = '';
  let done: (() => void) | undefined;
  const client = createClient({
    // Only the ack connection is used; the REST URLs serve status look-ups of own writes (none here).
    gatewayUrl: 'http://127.0.0.1:0',
    readUrl: 'http://127.0.0.1:0',
    ackUrl,
    token,
    ...(values.after === undefined ? {} : { after }),
    onAck: (ack) => process.stdout.write(`${values.json ? JSON.stringify(ack) : line(ack)}\n`),
    onEvent: (e) => {
      if (e.type === 'open') {
        process.stderr.write(`acks: ${connectedOnce ? 'reconnected' : 'connected'} to ${ackUrl} as ${who}${e.after !== undefined ? `, from after #${e.after}` : ''}; Ctrl-C stops\n`);
        connectedOnce = true;
        isOpen = true;
      } else if (e.type === 'close') {
        // Only a drop of an open connection is news; failed reconnect attempts are reported as errors.
        if (isOpen && !refused) process.stderr.write(`acks: connection closed (${e.code}${e.reason ? ` ${e.reason}` : ''}); reconnecting…\n`);
        isOpen = false;
      } else if (e.type === 'error') {
        const message = (e.error as { message?: string })?.message ?? '';
        if (!connectedOnce && /\b401\b/.test(message)) {
          // Retrying cannot help: say what to do and stop.
          process.stderr.write(`acks: ${ackUrl} refused ${who} (401); pass --token <jwt> signed for this deployment\n`);
          refused = true;
          client.close();
          done?.();
        } else if (message && message !== lastError) process.stderr.write(`acks: ${message}${/ECONNREFUSED/.test(message) ? ' (is the stack running? npm start)' : ''}\n`);
        lastError = message;
      } else if (e.type === 'reset') process.stderr.write(`acks: the server could not resume (${e.reason}: ${e.detail}); some acks were missed\n`);
    },
  });
  await new Promise<void>((resolve) => {
    done = resolve;
    const stop = () => {
      client.close();
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    client.connect().catch(() => undefined);
  });
  return refused ? 1 : 0;
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`acks: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
