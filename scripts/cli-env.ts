/** What the client-side CLIs (`npm run acks`, `npm run smoke`, `npm run bench -- --target`) read from the environment. */
import { z } from 'zod';
import { loadConfig, port } from '../core/config';

export const CliEnv = z.object({
  /** The JWT to use when no --token is given (the `export TOKEN=...` line `npm start` prints). `npm run acks` falls back to the local dev token. */
  TOKEN: z.string().optional(),
  /** `npm run acks`: the local ack service's port, as under `npm start` (used when --acks is not given). */
  ACK_PORT: port(3002),
});
export type CliEnv = z.infer<typeof CliEnv>;

export const cliEnv = (env: NodeJS.ProcessEnv = process.env): CliEnv => loadConfig(CliEnv, env);
