#!/usr/bin/env node
import * as path from 'node:path';
import { App, Aspects } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { AckstreamStack } from '../lib/ackstream-stack';
import { resolveStageConfig } from '../lib/config';

// `cdk synth -c stage=prod` picks the stage; every other knob is a context override (see config.ts).
const app = new App();
const config = resolveStageConfig((key) => app.node.tryGetContext(key));
const repoRoot = path.resolve(__dirname, '..', '..');
const entry = (app.node.tryGetContext('processorEntry') as string | undefined) ?? 'processors/lambda.ts';

new AckstreamStack(app, `Ackstream-${config.stage}`, {
  // Account comes from the deploying credentials; region is pinned so AZs are explicit.
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: config.region },
  config,
  processor: { entry: path.resolve(repoRoot, entry) },
  // Attachments (S3 + CloudFront + the worker with sharp's binaries) are on; `-c attachments=false`
  // leaves them out (docs/DEPLOY.md, "Attachments").
  ...(String(app.node.tryGetContext('attachments') ?? 'true') !== 'false' ? { attachmentWorker: { entry: path.resolve(repoRoot, 'worker/lambda.ts') } } : {}),
  imageDirectory: repoRoot,
  description: `Ackstream (${config.stage}): event-driven CQRS backbone`,
});

// Findings fail synth as errors unless suppressed with a reason (infra/lib/nag-suppressions.ts).
Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
