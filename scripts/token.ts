/** `npm run token -- --tenant T --sub S [--roles a,b] [--ttl seconds]`: prints a JWT for the local AUTH_SECRET. */
import { parseArgs } from 'node:util';
import { signToken } from '../core/auth';
import { SUBJECT_PATTERN, TENANT_PATTERN } from '../core/contracts';
import { localAuthSecret } from './local-stack';

async function main() {
  const { values } = parseArgs({
    options: {
      tenant: { type: 'string' },
      sub: { type: 'string' },
      roles: { type: 'string', default: '' },
      ttl: { type: 'string', default: '86400' },
    },
  });
  if (!values.tenant || !TENANT_PATTERN.test(values.tenant)) throw new Error('--tenant is required and must match ^[A-Za-z0-9_.-]{1,64}$');
  if (!values.sub || !SUBJECT_PATTERN.test(values.sub)) throw new Error('--sub is required (1-256 printable ASCII characters)');
  const ttl = Number(values.ttl);
  if (!Number.isInteger(ttl) || ttl <= 0) throw new Error('--ttl must be a positive number of seconds');
  const roles = values.roles ? values.roles.split(',').filter(Boolean) : [];
  process.stdout.write(`${await signToken(localAuthSecret(), { tenant: values.tenant, sub: values.sub, roles, ttlSeconds: ttl })}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`token: ${(err as Error).message}\n`);
  process.exit(2);
});
