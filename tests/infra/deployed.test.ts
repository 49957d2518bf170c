/**
 * What `cdk deploy` would run, checked offline on the synthesized cloud assembly of both stages:
 *  - cfn-lint finds no error in either template (.cfnlintrc.yaml);
 *  - the template ↔ runtime contract: every container's and function's environment + secrets pass
 *    that service's own config schema, the services start with them and answer /healthz on the
 *    machine's non-loopback address, and every table the code derives a name for exists and is granted;
 *  - the bundles in the assembly run: the migration function creates the schema on an empty database
 *    and is a no-op the second time; the processors' bundle commits + acks a write and hands back an
 *    undecided record in batchItemFailures, against local PostgreSQL, Redis, dynalite and moto.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, createPublicKey, generateKeyPairSync, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { CreateStreamCommand, DescribeStreamCommand, GetRecordsCommand, GetShardIteratorCommand } from '@aws-sdk/client-kinesis';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import sharpImport from 'sharp';
import { CreateSecretCommand, GetSecretValueCommand, PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { Redis } from 'ioredis';
import { Client } from 'pg';
import type { z } from 'zod';
import { AckConfig } from '../../ack-service/main';
import { AckRetentionEnv, retentionFrom } from '../../core/ack-log';
import { attachRequestId, ObjectKeys } from '../../core/attachments';
import { createS3, S3ObjectStore } from '../../core/object-store';
import { ensureTable, itemsTableDefinition, requestsTableDefinition } from '../../core/read-store';
import { WorkerConfig } from '../../worker/composition';
import { provisionAttachments, s3Event } from '../../scripts/attachment-stack';
import { loadConfig } from '../../core/config';
import { withDatabaseUrl } from '../../core/db-credentials';
import { deleteKeysByPrefix } from '../../core/redis';
import { RedisAckLog } from '../../core/redis-ack-log';
import { DownloadUrlEnv } from '../../gateway/download-urls';
import { GatewayConfig } from '../../gateway/main';
import { devConfig, prodConfig, type StageConfig } from '../../infra/lib/config';
import { PROCESSOR_FAILURE_MESSAGES } from '../../infra/lib/constructs/stream-processor';
import { MigrateConfig } from '../../infra/runtime/migrate-handler';
import { LambdaConfig } from '../../processors/config';
import { ProcessorsConfig } from '../../processors/config';
import { ReplayConfig } from '../../processors/replay/cli';
import { ReadConfig } from '../../read-model/main';
import { DynamoProjectionRegistry } from '../../core/projections/dynamodb/registry-store';
import { registryTableName, versionItemsTable } from '../../core/projections/registry';
import { createDocumentClient, createDynamo, createKinesis, createSqs } from '../../core/aws';
import { provision, startEmulators, type Emulators } from '../../scripts/local-stack';
import { command, ROUTE } from '../helpers/processors';
import { createTestDatabase, dropTestDatabase, REDIS_URL, uniqueName } from '../helpers/stack';
import { idsOf, resourcesOf, target, type CfnResource, type CfnTemplate } from './support';
import { REPO_ROOT, resolveLocal, synthReal, type RealSynth } from './synth-real';

jest.setTimeout(240_000);
// sharp is CommonJS: under ts-jest the default import is the function itself.
const sharp = ((sharpImport as unknown as { default?: typeof sharpImport }).default ?? sharpImport);

const STAGES: [string, StageConfig][] = [['dev', devConfig()], ['prod', prodConfig()]];
const synths = new Map<string, RealSynth>();
beforeAll(() => {
  for (const [name, cfg] of STAGES) synths.set(name, synthReal(cfg));
});
afterAll(() => {
  for (const s of synths.values()) s.cleanup();
});
const tpl = (stage: string): CfnTemplate => synths.get(stage)!.json;

/** Each entry file's own config schema (the module the container or function runs). */
const SERVICE_SCHEMAS: Record<string, z.ZodType[]> = {
  'gateway/main.ts': [GatewayConfig],
  'read-model/main.ts': [ReadConfig],
  'ack-service/main.ts': [AckConfig],
  // The operator task runs both CLIs through scripts/ops-run.ts, which builds DATABASE_URL first.
  'scripts/ops-run.ts': [ProcessorsConfig, ReplayConfig],
};

interface Container {
  stage: string;
  name: string;
  entry: string;
  port?: number;
  env: Record<string, string>;
  secrets: string[];
  taskRole: string | undefined;
}

function containers(stage: string): Container[] {
  const t = tpl(stage);
  return Object.entries(t.Resources)
    .filter(([, r]) => r.Type === 'AWS::ECS::TaskDefinition')
    .flatMap(([, r]) => (r.Properties!['ContainerDefinitions'] as Record<string, any>[]).map((c) => {
      const argv = [...(c.EntryPoint ?? []), ...(c.Command ?? [])] as string[];
      const entry = argv.find((a) => a in SERVICE_SCHEMAS);
      if (!entry) throw new Error(`container ${c.Name} runs ${argv.join(' ')}: no known entry (add its schema)`);
      return {
        stage, name: c.Name as string, entry,
        port: c.PortMappings?.[0]?.ContainerPort as number | undefined,
        env: Object.fromEntries((c.Environment ?? []).map((e: { Name: string; Value: unknown }) => [e.Name, resolveLocal(e.Value)])),
        secrets: (c.Secrets ?? []).map((s: { Name: string }) => s.Name),
        taskRole: target(r.Properties!['TaskRoleArn']),
      };
    }));
}

/** The CDN signing key a local gateway gets in place of the generated one (a PEM RSA private key, as the secret holds). */
const LOCAL_CDN_KEY = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

/** Secrets injected by ECS, replaced by local values of the right shape. */
const localSecret = (name: string) => {
  if (name === 'DB_USER') return 'ackstream_app';
  if (name === 'ATTACHMENT_CDN_PRIVATE_KEY') return LOCAL_CDN_KEY;
  return `local-${name.toLowerCase()}-`.padEnd(48, 'x');
};

function functions(stage: string): Array<{ id: string; handler: string; env: Record<string, string>; role: string | undefined }> {
  return Object.entries(tpl(stage).Resources)
    .filter(([id, r]) => r.Type === 'AWS::Lambda::Function' && (id.startsWith('Processor') || id.startsWith('Migrations')))
    .map(([id, r]) => ({
      id,
      handler: r.Properties!['Handler'] as string,
      env: Object.fromEntries(Object.entries((r.Properties!['Environment']?.Variables ?? {}) as Record<string, unknown>).map(([k, v]) => [k, resolveLocal(v)])),
      role: target(r.Properties!['Role']),
    }));
}

/** Statements of every IAM policy attached to a role. */
function statementsOf(t: CfnTemplate, role: string | undefined): Array<{ actions: string[]; resources: string[] }> {
  return resourcesOf(t, 'AWS::IAM::Policy')
    .filter((p) => (p.Properties!['Roles'] as unknown[]).some((r) => target(r) === role))
    .flatMap((p) => (p.Properties!['PolicyDocument'].Statement as Record<string, unknown>[]).map((st) => ({
      actions: [st.Action].flat() as string[],
      resources: [st.Resource].flat().map(resolveLocal),
    })));
}

const granted = (t: CfnTemplate, role: string | undefined, action: string, resource: string) =>
  statementsOf(t, role).some((st) => st.actions.includes(action) && st.resources.includes(resource));

// ---------------------------------------------------------------------------------------------
const lint = spawnSync('cfn-lint', ['--version'], { encoding: 'utf8' });
const haveCfnLint = lint.status === 0;
if (!haveCfnLint) process.stderr.write('cfn-lint is not installed: the cfn-lint tests are SKIPPED (pip install cfn-lint; .ci/run does)\n');

describe.each(STAGES)('cfn-lint, %s stage', (stage) => {
  (haveCfnLint ? test : test.skip)('no errors (rules ignored only as listed in .cfnlintrc.yaml)', () => {
    const out = spawnSync('cfn-lint', ['-f', 'json', '-t', synths.get(stage)!.templateFile], { cwd: REPO_ROOT, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    const findings = JSON.parse(out.stdout || '[]') as Array<{ Level: string; Rule: { Id: string }; Message: string; Location: { Path: unknown[] } }>;
    const errors = findings.filter((f) => f.Level === 'Error').map((f) => `${f.Rule.Id} ${JSON.stringify(f.Location.Path)}: ${f.Message}`);
    expect(errors).toEqual([]);
    expect(out.status! & 2).toBe(0); // cfn-lint's exit code: bit 2 = errors
  });
});

describe.each(STAGES)('template ↔ runtime contract, %s stage', (stage, cfg) => {
  test('every container\'s environment + secrets pass its service\'s own schema; services listen on all interfaces, keep-alive above the ALB idle timeout', () => {
    const list = containers(stage);
    expect(list.map((c) => c.entry).sort()).toEqual(['ack-service/main.ts', 'gateway/main.ts', 'read-model/main.ts', 'scripts/ops-run.ts']);
    const alb = resourcesOf(tpl(stage), 'AWS::ElasticLoadBalancingV2::LoadBalancer')[0]!;
    const idle = Number((alb.Properties!['LoadBalancerAttributes'] as { Key: string; Value: string }[]).find((a) => a.Key === 'idle_timeout.timeout_seconds')!.Value);
    expect(idle).toBe(cfg.albIdleTimeoutSeconds);
    for (const c of list) {
      const env = withDatabaseUrl({ ...c.env, ...Object.fromEntries(c.secrets.map((s) => [s, localSecret(s)])) });
      for (const schema of SERVICE_SCHEMAS[c.entry]!) {
        const parsed = loadConfig(schema, env) as Record<string, unknown>;
        if (c.port !== undefined) {
          expect(parsed['HOST']).toBe('0.0.0.0');
          expect(Object.entries(parsed).some(([k, v]) => k.endsWith('_PORT') && v === c.port)).toBe(true);
          expect(parsed['HTTP_KEEP_ALIVE_MS']).toBeGreaterThan(idle * 1000);
        }
      }
    }
  });

  test('every function\'s environment passes its entry\'s schema (processors: LambdaConfig; migrations: MigrateConfig)', () => {
    const fns = functions(stage);
    expect(fns.map((f) => f.handler).sort()).toEqual(['index.handler', 'index.handler', 'index.projectionHandler']);
    for (const f of fns) {
      const schema = f.id.startsWith('Migrations') ? MigrateConfig : LambdaConfig;
      // Lambda sets AWS_REGION itself.
      expect(() => loadConfig(schema, { ...f.env, AWS_REGION: cfg.region })).not.toThrow();
      expect(f.env['AUTH_SECRET_ARN']).toBeUndefined(); // nothing reads it
    }
  });

  test('every table the code derives a name for exists and is granted to the roles that use it', () => {
    const t = tpl(stage);
    const [items] = idsOf(t, 'AWS::DynamoDB::Table', (r) => (r.Properties!['KeySchema'] as unknown[]).length === 2);
    const itemsName = `ref-${items}`;
    const registry = idsOf(t, 'AWS::DynamoDB::Table', (r) => r.Properties!['TableName'] !== undefined && resolveLocal(r.Properties!['TableName']) === registryTableName(itemsName));
    expect(registry).toHaveLength(1);
    const registryArn = `att-${registry[0]}-Arn`;
    const versionArn = (a: string) => a.endsWith(`:table/${versionItemsTable(itemsName, 0).replace(/0$/, '*')}`);
    const processorRoles = functions(stage).filter((f) => f.id.startsWith('ProcessorFn') || f.id.startsWith('ProcessorProjectionFn')).map((f) => f.role);
    const readApi = containers(stage).find((c) => c.entry === 'read-model/main.ts')!.taskRole;
    const ops = containers(stage).find((c) => c.entry === 'scripts/ops-run.ts')!.taskRole;
    for (const role of [...processorRoles, readApi, ops]) {
      expect(granted(t, role, 'dynamodb:GetItem', registryArn)).toBe(true);
      expect(statementsOf(t, role).some((st) => st.actions.includes('dynamodb:GetItem') && st.resources.some(versionArn))).toBe(true);
    }
    expect(granted(t, ops, 'dynamodb:PutItem', registryArn)).toBe(true);
    expect(statementsOf(t, ops).some((st) => st.actions.includes('dynamodb:CreateTable') && st.resources.some(versionArn))).toBe(true);
    // The stream the gateway writes to is the one in its environment.
    const gw = containers(stage).find((c) => c.entry === 'gateway/main.ts')!;
    const [stream] = idsOf(t, 'AWS::Kinesis::Stream');
    expect(gw.env['KINESIS_STREAM']).toBe(`ref-${stream}`);
    expect(granted(t, gw.taskRole, 'kinesis:PutRecords', `att-${stream}-Arn`)).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
function nonLoopbackAddress(): string {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  throw new Error('this machine has no non-loopback IPv4 address');
}

async function healthy(url: string, child: ChildProcess, timeoutMs = 30_000): Promise<number> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`service exited with ${child.exitCode}`);
    try {
      const res = await fetch(url);
      return res.status;
    } catch {
      if (Date.now() > until) throw new Error(`${url} did not answer in ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

const stopChild = (child: ChildProcess) => new Promise<void>((resolve) => {
  if (child.exitCode !== null) return resolve();
  child.once('exit', () => resolve());
  try { process.kill(-child.pid!, 'SIGTERM'); } catch { resolve(); }
});

describe('the services start with the template\'s environment', () => {
  let emulators: Emulators;
  const prefix = `test:${uniqueName('deployed')}:`;
  beforeAll(async () => {
    emulators = await startEmulators();
  });
  afterAll(async () => {
    await emulators?.close();
    const redis = new Redis(REDIS_URL);
    await deleteKeysByPrefix(redis, prefix);
    redis.disconnect();
  });

  test.each(STAGES)('%s: gateway, read API and ack service answer /healthz on the non-loopback address', async (stage) => {
    const host = nonLoopbackAddress();
    for (const c of containers(stage).filter((x) => x.port !== undefined)) {
      // AWS endpoints remapped to the local emulators, secrets replaced by local values, Redis local.
      const env: NodeJS.ProcessEnv = {
        PATH: process.env.PATH, HOME: process.env.HOME,
        ...c.env,
        ...Object.fromEntries(c.secrets.filter((s) => s !== 'REDIS_AUTH_TOKEN').map((s) => [s, localSecret(s)])),
        REDIS_URL, REDIS_PREFIX: prefix, LOG_LEVEL: 'warn',
        KINESIS_ENDPOINT: emulators.kinesisEndpoint, DYNAMODB_ENDPOINT: emulators.dynamoEndpoint,
        AWS_ACCESS_KEY_ID: 'local', AWS_SECRET_ACCESS_KEY: 'local',
      };
      const child = spawn(process.execPath, ['--import', 'tsx', c.entry], { cwd: REPO_ROOT, env, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
      try {
        const status = await healthy(`http://${host}:${c.port}/healthz`, child).catch((err: Error) => { throw new Error(`${c.entry}: ${err.message}\n${stderr}`); });
        expect({ entry: c.entry, status }).toEqual({ entry: c.entry, status: 200 });
      } finally {
        await stopChild(child);
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------
async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Runs `fn` with process.env replaced (a Lambda reads its configuration from the environment). */
async function withEnv<T>(env: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved = { ...process.env };
  for (const k of Object.keys(process.env)) if (!['PATH', 'HOME', 'TMPDIR'].includes(k)) delete process.env[k];
  Object.assign(process.env, env);
  try {
    return await fn();
  } finally {
    for (const k of Object.keys(process.env)) delete process.env[k];
    Object.assign(process.env, saved);
  }
}

describe('the bundles in the cloud assembly run (dev stage assets)', () => {
  const name = uniqueName('bundles');
  let moto: ChildProcess;
  let smEndpoint: string;
  let emulators: Emulators;
  let masterArn: string;
  let appArn: string;
  const prefix = `test:${name}:`;
  const items = `${name}-items`;
  const requests = `${name}-requests`;

  beforeAll(async () => {
    const port = await freePort();
    moto = spawn('moto_server', ['-p', String(port)], { stdio: 'ignore', detached: true });
    smEndpoint = `http://127.0.0.1:${port}`;
    const sm = new SecretsManagerClient({ region: 'us-east-1', endpoint: smEndpoint, credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
    for (let i = 0; ; i++) {
      try {
        masterArn = (await sm.send(new CreateSecretCommand({ Name: `${name}-master`, SecretString: JSON.stringify({ username: 'postgres', password: 'local-master' }) }))).ARN!;
        break;
      } catch (err) {
        if (i > 80) throw err;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    appArn = (await sm.send(new CreateSecretCommand({ Name: `${name}-app`, SecretString: JSON.stringify({ username: 'ackstream_app', password: 'local-app-password' }) }))).ARN!;
    sm.destroy();
    emulators = await startEmulators();
    // The database starts EMPTY: the migration bundle creates the schema.
    await createTestDatabase(name);
  });
  afterAll(async () => {
    if (moto) await stopChild(moto);
    await emulators?.close();
    await dropTestDatabase(name);
    const redis = new Redis(REDIS_URL);
    await deleteKeysByPrefix(redis, prefix);
    redis.disconnect();
  });

  const awsLocal = () => ({ AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'local', AWS_SECRET_ACCESS_KEY: 'local', AWS_ENDPOINT_URL_SECRETS_MANAGER: smEndpoint });
  const fn = (prefixId: string) => functions('dev').find((f) => f.id.startsWith(prefixId))!;
  const bundle = (id: string) => require(`${synths.get('dev')!.assetDirOf(id)}/index.js`) as Record<string, (e?: unknown) => Promise<any>>;

  test('the migration bundle creates the schema on an empty database, then is a no-op; the app role is least-privilege', async () => {
    const m = fn('MigrationsFn');
    const env = { ...m.env, ...awsLocal(), DB_SECRET_ARN: masterArn, APP_DB_SECRET_ARN: appArn, DB_HOST: '127.0.0.1', DB_SSL: 'disable', DB_NAME: name };
    const mod = bundle(m.id);
    const first = await withEnv(env, () => mod.handler!());
    expect(first.applied).toEqual(['1732262400000_event-log', '1732348800000_parked', '1764806400000_app-role', '1764892800000_attachment-quota']);
    const second = await withEnv(env, () => mod.handler!());
    expect(second).toEqual({ applied: [], appUser: 'ackstream_app' });
    const pg = new Client({ connectionString: `postgres://postgres@127.0.0.1:5432/${name}` });
    await pg.connect();
    try {
      const priv = async (table: string, p: string) => (await pg.query('SELECT has_table_privilege($1, $2, $3) AS ok', ['ackstream_app', table, p])).rows[0].ok as boolean;
      expect(await priv('events', 'INSERT')).toBe(true);
      expect(await priv('events', 'UPDATE')).toBe(false); // the log is append-only
      expect(await priv('events', 'DELETE')).toBe(false);
      expect(await priv('pgmigrations', 'SELECT')).toBe(false);
    } finally {
      await pg.end();
    }
  });

  test('the CDN signing-key bundle: Create puts a fresh RSA key in the secret and returns its public half; Update keeps it; a foreign value is replaced', async () => {
    const sm = new SecretsManagerClient({ region: 'us-east-1', endpoint: smEndpoint, credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
    try {
      // As CDK creates it: a random placeholder string, not a key.
      const secretArn = (await sm.send(new CreateSecretCommand({ Name: `${name}-cdn-key`, SecretString: 'placeholder-random-string' }))).ARN!;
      const [id] = idsOf(tpl('dev'), 'AWS::Lambda::Function', () => true).filter((x) => x.startsWith('AttachmentsSigningKeyFn'));
      const mod = bundle(id!);
      const event = (RequestType: 'Create' | 'Update') => ({
        RequestType, ServiceToken: 'arn', ResponseURL: 'https://x', StackId: 'arn:stack', RequestId: randomUUID(), LogicalResourceId: 'SigningKeyPair',
        ResourceType: 'Custom::CdnSigningKeyPair', ResourceProperties: { ServiceToken: 'arn', SecretArn: secretArn },
        ...(RequestType === 'Update' ? { PhysicalResourceId: secretArn, OldResourceProperties: { ServiceToken: 'arn', SecretArn: secretArn } } : {}),
      });
      const created = await withEnv(awsLocal(), () => mod.handler!(event('Create')));
      const stored = (await sm.send(new GetSecretValueCommand({ SecretId: secretArn }))).SecretString!;
      expect(stored).toMatch(/^-----BEGIN PRIVATE KEY-----/);
      expect(created.PhysicalResourceId).toBe(secretArn);
      expect(created.Data.PublicKeyPem).toBe(createPublicKey(stored).export({ type: 'spki', format: 'pem' }).toString());
      expect(created.Data.PublicKeyPem).toMatch(/^-----BEGIN PUBLIC KEY-----/); // what AWS::CloudFront::PublicKey takes
      // The gateway's config accepts what the secret holds.
      expect(() => loadConfig(DownloadUrlEnv, { ATTACHMENT_DOWNLOADS: 'cloudfront', ATTACHMENT_CDN_DOMAIN: 'd1.cloudfront.net', ATTACHMENT_CDN_KEY_PAIR_ID: 'K1', ATTACHMENT_CDN_PRIVATE_KEY: stored })).not.toThrow();
      const updated = await withEnv(awsLocal(), () => mod.handler!(event('Update')));
      expect(updated.Data.PublicKeyPem).toBe(created.Data.PublicKeyPem);
      expect((await sm.send(new GetSecretValueCommand({ SecretId: secretArn }))).SecretString).toBe(stored);
      await sm.send(new PutSecretValueCommand({ SecretId: secretArn, SecretString: 'not a key' }));
      const regenerated = await withEnv(awsLocal(), () => mod.handler!(event('Update')));
      expect(regenerated.Data.PublicKeyPem).not.toBe(created.Data.PublicKeyPem);
    } finally {
      sm.destroy();
    }
  });

  test('the processors bundle, as the app role: a write is committed and acked; an undecided record comes back in batchItemFailures', async () => {
    const dynamo = createDynamo({ region: 'us-east-1', endpoint: emulators.dynamoEndpoint });
    const kinesis = createKinesis({ region: 'us-east-1', endpoint: emulators.kinesisEndpoint });
    const sqs = createSqs({ region: 'us-east-1', endpoint: emulators.sqsEndpoint });
    await provision({ kinesis, dynamo, sqs, stream: `${name}-commands`, shardCount: 1, itemsTable: items, requestsTable: requests, dlqName: `${name}-dlq`, databaseUrl: `postgres://postgres@127.0.0.1:5432/${name}` });
    await new DynamoProjectionRegistry(createDocumentClient(dynamo), registryTableName(items), { itemsTable: items, redisPrefix: prefix }).ensureTable(dynamo);
    kinesis.destroy();
    sqs.destroy();
    const p = fn('ProcessorFn');
    const env: Record<string, string> = {
      ...p.env, ...awsLocal(),
      DB_SECRET_ARN: appArn, DB_HOST: '127.0.0.1', DB_SSL: 'disable', DB_NAME: name,
      REDIS_URL, REDIS_PREFIX: prefix, ITEMS_TABLE: items, REQUESTS_TABLE: requests,
      AWS_ENDPOINT_URL_DYNAMODB: emulators.dynamoEndpoint,
    };
    delete env['REDIS_AUTH_TOKEN_SECRET_ARN']; // local Redis has no AUTH
    delete env['DLQ_URL'];
    const write = command({ kind: 'put', id: 'deployed-1', data: { title: 'from the bundle' } });
    const undecided = command({ kind: 'put', id: 'deployed-2', data: { title: 'never committed' } });
    const event = (...cmds: typeof write[]) => ({
      Records: cmds.map((c, i) => ({
        eventSource: 'aws:kinesis', eventVersion: '1.0', eventName: 'aws:kinesis:record', awsRegion: 'us-east-1',
        eventID: `shardId-000000000000:4959${i}`, eventSourceARN: 'arn:aws:kinesis:us-east-1:123456789012:stream/local',
        invokeIdentityArn: 'arn:aws:iam::123456789012:role/local',
        kinesis: { kinesisSchemaVersion: '1.0', partitionKey: c.id, sequenceNumber: `4959${i}`, approximateArrivalTimestamp: Date.now() / 1000, data: Buffer.from(JSON.stringify(c)).toString('base64') },
      })),
    });
    const mod = bundle(p.id);
    const lines: string[] = [];
    const write0 = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string | Uint8Array) => { lines.push(String(chunk)); return true; }) as typeof process.stdout.write;
    try {
      await withEnv(env, async () => {
        expect(await mod.handler!(event(write))).toEqual({ batchItemFailures: [] });
        expect(await mod.projectionHandler!(event(write, undecided))).toEqual({ batchItemFailures: [{ itemIdentifier: '49591' }] });
      });
    } finally {
      process.stdout.write = write0;
    }
    const pg = new Client({ connectionString: `postgres://postgres@127.0.0.1:5432/${name}` });
    await pg.connect();
    try {
      expect((await pg.query('SELECT status FROM requests WHERE request_id = $1', [write.requestId])).rows).toEqual([{ status: 'committed' }]);
    } finally {
      await pg.end();
    }
    const redis = new Redis(REDIS_URL);
    try {
      const acks = await new RedisAckLog(redis, prefix, retentionFrom(loadConfig(AckRetentionEnv, {}))).readAfter(ROUTE, 0, 100);
      expect(JSON.stringify(acks)).toContain(write.requestId);
      expect(JSON.stringify(acks)).toContain('committed');
    } finally {
      redis.disconnect();
    }
    dynamo.destroy();
    // Whatever the bundle logged for failed records is a message the FailedRecords metric filter counts.
    for (const l of lines.filter((x) => x.startsWith('{"t"'))) {
      const entry = JSON.parse(l) as { level: string; msg: string };
      if (entry.level === 'warn' && /fail|retr/.test(entry.msg)) expect(PROCESSOR_FAILURE_MESSAGES).toContain(entry.msg);
    }
  });
});

// ---------------------------------------------------------------------------------------------
/** The attachment worker's function in a template (the one whose environment names the bucket and the stream). */
function workerFunction(stage: string): { id: string; architecture: string; env: Record<string, string> } {
  const [id, r] = Object.entries(tpl(stage).Resources)
    .find(([fid, x]) => x.Type === 'AWS::Lambda::Function' && fid.startsWith('AttachmentsWorker'))!;
  return {
    id,
    architecture: (r.Properties!['Architectures'] as string[] | undefined)?.[0] ?? 'x86_64',
    env: Object.fromEntries(Object.entries((r.Properties!['Environment']?.Variables ?? {}) as Record<string, unknown>).map(([k, v]) => [k, resolveLocal(v)])),
  };
}

describe.each(STAGES)('the attachment worker in the %s template', (stage, cfg) => {
  test('its environment passes the worker\'s own schema (WorkerConfig)', () => {
    const w = workerFunction(stage);
    expect(() => loadConfig(WorkerConfig, { ...w.env, AWS_REGION: cfg.region })).not.toThrow();
  });

  test('its asset carries sharp\'s binaries for the function\'s architecture, and only those', () => {
    const w = workerFunction(stage);
    const dir = synths.get(stage)!.assetDirOf(w.id);
    const cpu = { x86_64: 'x64', arm64: 'arm64' }[w.architecture]!;
    const platformPackages = fs.readdirSync(path.join(dir, 'node_modules', '@img')).filter((p) => p.startsWith('sharp-')).sort();
    expect(platformPackages).toEqual([`sharp-libvips-linux-${cpu}`, `sharp-linux-${cpu}`]);
    for (const p of platformPackages) {
      const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'node_modules', '@img', p, 'package.json'), 'utf8')) as { os: string[]; cpu: string[]; libc: string[] };
      expect({ os: pkg.os, cpu: pkg.cpu, libc: pkg.libc }).toEqual({ os: ['linux'], cpu: [cpu], libc: ['glibc'] });
    }
    // esbuild left sharp out of index.js: one copy, the one beside its binaries.
    expect(fs.readFileSync(path.join(dir, 'index.js'), 'utf8')).toMatch(/require\("sharp"\)/);
  });
});

describe('the attachment worker\'s asset runs on its own (dev stage), against the emulators', () => {
  const name = uniqueName('worker_bundle').replace(/_/g, '-');
  let emulators: Emulators;
  let runDir: string;
  let s3: ReturnType<typeof createS3> | undefined;
  let sqs: ReturnType<typeof createSqs> | undefined;
  let kinesis: ReturnType<typeof createKinesis> | undefined;
  beforeAll(async () => {
    emulators = await startEmulators();
    // A copy of the asset in a directory of its own: no node_modules up its tree, as in /var/task.
    runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ackstream-worker-asset-'));
    fs.cpSync(synths.get('dev')!.assetDirOf(workerFunction('dev').id), runDir, { recursive: true });
  });
  afterAll(async () => {
    for (const client of [s3, sqs, kinesis]) client?.destroy();
    await emulators?.close();
    if (runDir) fs.rmSync(runDir, { recursive: true, force: true });
  });

  test('a PNG and a JPEG upload: both kept with a WebP thumbnail, and their attach commands land on the stream', async () => {
    for (let dir = path.dirname(runDir); dir !== path.dirname(dir); dir = path.dirname(dir)) {
      expect(fs.existsSync(path.join(dir, 'node_modules'))).toBe(false);
    }
    const region = 'us-east-1';
    s3 = createS3({ region, endpoint: emulators.sqsEndpoint }); // fauxqs serves S3 on its SQS port
    sqs = createSqs({ region, endpoint: emulators.sqsEndpoint });
    kinesis = createKinesis({ region, endpoint: emulators.kinesisEndpoint });
    const bucket = `${name}-att`;
    const stream = `${name}-commands`;
    const { workQueueUrl } = await provisionAttachments(s3, sqs, { bucket, queueName: `${name}-work` });
    await kinesis.send(new CreateStreamCommand({ StreamName: stream, ShardCount: 1 }));
    while ((await kinesis.send(new DescribeStreamCommand({ StreamName: stream }))).StreamDescription?.StreamStatus !== 'ACTIVE') {
      await new Promise((r) => setTimeout(r, 100));
    }
    // The worker asks the read model's requests whether an attachment is already decided: the template's tables, in dynalite.
    const w = workerFunction('dev');
    const dynamo = createDynamo({ region, endpoint: emulators.dynamoEndpoint });
    await ensureTable(dynamo, itemsTableDefinition(w.env['ITEMS_TABLE']!));
    await ensureTable(dynamo, requestsTableDefinition(w.env['REQUESTS_TABLE']!));
    dynamo.destroy();

    // Real images, made by the test's own sharp (the repo's), uploaded as a signed PUT would store them.
    const png = await sharp({ create: { width: 640, height: 480, channels: 3, background: '#336699' } }).png().toBuffer();
    const jpeg = await sharp({ create: { width: 1200, height: 300, channels: 3, background: '#996633' } }).jpeg().toBuffer();
    const uploads = [
      { attachmentId: 'a'.repeat(32), name: 'photo.png', contentType: 'image/png', bytes: png },
      { attachmentId: 'b'.repeat(32), name: 'photo.jpg', contentType: 'image/jpeg', bytes: jpeg },
    ];
    const messages = [];
    for (const u of uploads) {
      const key = ObjectKeys.upload('t1', 'photos', 'item-1', u.attachmentId);
      const put = await s3.send(new PutObjectCommand({
        Bucket: bucket, Key: key, Body: u.bytes, ContentType: u.contentType,
        Metadata: {
          principal: 'user-1', name: u.name, contenttype: u.contentType, size: String(u.bytes.length),
          sha256: createHash('sha256').update(u.bytes).digest('hex'), expires: new Date(Date.now() + 900_000).toISOString(),
        },
      }));
      // The bucket notification S3 sends (fauxqs sends none), through the real work queue.
      await sqs.send(new SendMessageCommand({ QueueUrl: workQueueUrl, MessageBody: JSON.stringify(s3Event(bucket, region, key, u.bytes.length, put.ETag!)) }));
    }
    while (messages.length < uploads.length) {
      const got = await sqs.send(new ReceiveMessageCommand({ QueueUrl: workQueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }));
      messages.push(...(got.Messages ?? []));
    }
    // The event Lambda's SQS event source mapping hands the function.
    const event = {
      Records: messages.map((m) => ({
        messageId: m.MessageId, receiptHandle: m.ReceiptHandle, body: m.Body, md5OfBody: m.MD5OfBody,
        attributes: { ApproximateReceiveCount: '1', SentTimestamp: String(Date.now()), SenderId: 'local', ApproximateFirstReceiveTimestamp: String(Date.now()) },
        messageAttributes: {}, eventSource: 'aws:sqs', eventSourceARN: `arn:aws:sqs:${region}:123456789012:${name}-work`, awsRegion: region,
      })),
    };

    // A fresh Node process in the copy: the template's environment, AWS endpoints remapped to the emulators.
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      ...w.env,
      ATTACHMENTS_BUCKET: bucket, KINESIS_STREAM: stream,
      AWS_REGION: region, AWS_ACCESS_KEY_ID: 'local', AWS_SECRET_ACCESS_KEY: 'local',
      S3_ENDPOINT: emulators.sqsEndpoint, KINESIS_ENDPOINT: emulators.kinesisEndpoint, DYNAMODB_ENDPOINT: emulators.dynamoEndpoint,
      LOG_LEVEL: 'warn',
    };
    const script = `
      const where = require.resolve('sharp');
      const { handler } = require('./index.js');
      handler(JSON.parse(process.env.EVENT)).then((res) => process.stdout.write(JSON.stringify({ where, res })), (err) => { console.error(err); process.exit(1); });`;
    // Asynchronously: kinesalite and dynalite run in this process and must keep answering.
    const run = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, ['-e', script], { cwd: runDir, env: { ...env, EVENT: JSON.stringify(event) }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (d: Buffer) => { stdout += d.toString(); });
      child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.on('exit', (status) => { clearTimeout(timer); resolve({ status, stdout, stderr }); });
    });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const out = JSON.parse(run.stdout) as { where: string; res: unknown };
    expect(out.where.startsWith(fs.realpathSync(runDir))).toBe(true); // sharp came from the asset
    expect(out.res).toEqual({ batchItemFailures: [] });

    const store = new S3ObjectStore(s3, { region, bucket, endpoint: emulators.sqsEndpoint });
    const iterator = (await kinesis.send(new GetShardIteratorCommand({ StreamName: stream, ShardId: 'shardId-000000000000', ShardIteratorType: 'TRIM_HORIZON' }))).ShardIterator;
    const records = (await kinesis.send(new GetRecordsCommand({ ShardIterator: iterator }))).Records ?? [];
    const commands = records.map((r) => JSON.parse(Buffer.from(r.Data!).toString('utf8')) as { requestId: string; kind: string; id: string; data: Record<string, any>; reject?: unknown });
    expect(commands).toHaveLength(2);
    for (const u of uploads) {
      const cmd = commands.find((c) => c.data.attachmentId === u.attachmentId)!;
      expect(cmd).toMatchObject({ kind: 'attach', id: 'item-1', requestId: attachRequestId(u.attachmentId), data: { name: u.name, contentType: u.contentType, size: u.bytes.length } });
      expect(cmd.reject).toBeUndefined();
      // The kept bytes are the upload's; the thumbnail is a WebP within 256×256, as the command says.
      expect((await store.get(ObjectKeys.object('t1', 'photos', 'item-1', u.attachmentId)))!.equals(u.bytes)).toBe(true);
      const thumb = (await store.get(ObjectKeys.thumbnail('t1', 'photos', 'item-1', u.attachmentId)))!;
      const meta = await sharp(thumb).metadata();
      expect(meta.format).toBe('webp');
      expect(Math.max(meta.width!, meta.height!)).toBe(256);
      expect(cmd.data.thumbnail).toEqual({ contentType: 'image/webp', width: meta.width, height: meta.height, size: thumb.length });
      expect(await store.head(ObjectKeys.upload('t1', 'photos', 'item-1', u.attachmentId))).toBeUndefined(); // the upload is deleted last
    }
  });
});
