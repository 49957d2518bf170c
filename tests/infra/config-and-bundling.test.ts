/**
 * Stage selection by context, and the synth-time Lambda bundling that keeps
 * `cdk synth` free of Docker.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import { devConfig, prodConfig, resolveStageConfig } from '../../infra/lib/config';
import { StreamProcessor } from '../../infra/lib/constructs/stream-processor';
import { FIXTURES } from './support';

const ctx = (values: Record<string, string>) => (key: string) => values[key];

describe('stage selection by context', () => {
  test('defaults to dev', () => {
    expect(resolveStageConfig(ctx({}))).toEqual(devConfig());
  });

  test('stage=prod picks the prod preset', () => {
    expect(resolveStageConfig(ctx({ stage: 'prod' }))).toEqual(prodConfig());
  });

  test('numbers are overridable without code: shards (0 = on-demand), WAF (0 = off), sizes', () => {
    const cfg = resolveStageConfig(
      ctx({ stage: 'prod', streamShardCount: '0', wafRateLimitPer5Min: '0', dbInstanceType: 'r7g.2xlarge', redisReplicas: '1', certificateArn: 'arn:x' }),
    );
    expect(cfg.streamShardCount).toBeUndefined();
    expect(cfg.wafRateLimitPer5Min).toBeUndefined();
    expect(cfg.database.instanceType).toBe('r7g.2xlarge');
    expect(cfg.redis.replicas).toBe(1);
    expect(cfg.certificateArn).toBe('arn:x');
    expect(cfg.database.multiAz).toBe(true);
  });

  test('region moves the explicit AZ list with it', () => {
    expect(resolveStageConfig(ctx({ stage: 'prod', region: 'eu-west-1' })).availabilityZones).toEqual([
      'eu-west-1a',
      'eu-west-1b',
      'eu-west-1c',
    ]);
  });

  test('rejects unknown stages and malformed numbers', () => {
    expect(() => resolveStageConfig(ctx({ stage: 'staging' }))).toThrow(/dev or prod/);
    expect(() => resolveStageConfig(ctx({ streamShardCount: 'many' }))).toThrow(/non-negative integer/);
  });

  test('no reserved concurrency by default (the mapping bounds each function to shards x parallelization); overridable', () => {
    const p = prodConfig();
    expect(p.processor.reservedConcurrency).toBeUndefined();
    expect(devConfig().processor.reservedConcurrency).toBeUndefined();
    expect(resolveStageConfig(ctx({ stage: 'prod', reservedConcurrency: '32' })).processor.reservedConcurrency).toBe(32);
    expect(resolveStageConfig(ctx({ stage: 'prod', reservedConcurrency: '0' })).processor.reservedConcurrency).toBeUndefined();
    expect(p.availabilityZones).toHaveLength(3);
    expect(devConfig().availabilityZones).toHaveLength(2);
  });
});

describe('processor bundling', () => {
  test('a TypeScript entry is bundled with esbuild at synth, without Docker, into a working handler', async () => {
    const outdir = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'ackstream-bundle-'));
    const app = new App({ outdir });
    const stack = new Stack(app, 'Bundle', { env: { region: 'us-east-1', account: '123456789012' } });
    const vpc = new ec2.Vpc(stack, 'Vpc', { availabilityZones: ['us-east-1a', 'us-east-1b'], natGateways: 0 });
    new StreamProcessor(stack, 'P', {
      source: { entry: path.join(FIXTURES, 'lambda-src', 'handler.ts') },
      settings: devConfig().processor,
      retentionHours: 24,
      encryptionKey: new kms.Key(stack, 'Key'),
      vpc,
      subnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
      environment: {},
      logRetention: logs.RetentionDays.ONE_WEEK,
      retain: false,
      iteratorAgeAlarmSeconds: 60,
    });
    Template.fromStack(stack).hasResourceProperties('AWS::Lambda::Function', { Handler: 'index.handler' });

    const assembly = app.synth();
    const bundles = fs
      .readdirSync(assembly.directory)
      .filter((d) => d.startsWith('asset.'))
      .map((d) => path.join(assembly.directory, d, 'index.js'))
      .filter((f) => fs.existsSync(f));
    expect(bundles).toHaveLength(1);
    const mod = require(bundles[0]!) as { handler: () => Promise<unknown> };
    await expect(mod.handler()).resolves.toEqual({ batchItemFailures: [] });
    fs.rmSync(outdir, { recursive: true, force: true });
  });

  test('a missing entry fails synth with a clear message', () => {
    const stack = new Stack(new App(), 'Missing');
    expect(() =>
      new StreamProcessor(stack, 'P', {
        source: { entry: path.join(FIXTURES, 'nope.ts') },
        settings: devConfig().processor,
        retentionHours: 24,
        encryptionKey: new kms.Key(stack, 'Key'),
        vpc: new ec2.Vpc(stack, 'Vpc', { natGateways: 0 }),
        subnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
        environment: {},
        logRetention: logs.RetentionDays.ONE_WEEK,
        retain: false,
        iteratorAgeAlarmSeconds: 60,
      }),
    ).toThrow(/does not exist/);
  });
});
