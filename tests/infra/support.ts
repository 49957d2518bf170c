import * as path from 'node:path';
import { App, Aspects } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { AwsSolutionsChecks } from 'cdk-nag';
import { AckstreamStack } from '../../infra/lib/ackstream-stack';
import type { StageConfig } from '../../infra/lib/config';

// The same feature flags `cdk synth` uses, so tests see the deployed template.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const cdkJson = require('../../cdk.json') as { context: Record<string, unknown> };

export const FIXTURES = path.join(__dirname, 'fixtures');

export interface Synthesized {
  readonly stack: AckstreamStack;
  readonly template: Template;
  /** Raw template, for checks that walk all resources. */
  readonly json: CfnTemplate;
}

export interface CfnResource {
  Type: string;
  Properties?: Record<string, any>;
  Metadata?: Record<string, any>;
}
export interface CfnTemplate {
  Resources: Record<string, CfnResource>;
  Parameters?: Record<string, unknown>;
}

/**
 * Synthesizes one stage with the cdk-nag AwsSolutions pack applied, using a
 * prebuilt Lambda fixture and a stand-in Dockerfile: no service code, no Docker.
 */
export function synthStage(config: StageConfig): Synthesized {
  const app = new App({ context: { ...cdkJson.context, stage: config.stage } });
  const stack = new AckstreamStack(app, `Ackstream-${config.stage}`, {
    env: { account: '123456789012', region: config.region },
    config,
    processor: { code: lambda.Code.fromAsset(path.join(FIXTURES, 'lambda')) },
    migrationCode: lambda.Code.fromAsset(path.join(FIXTURES, 'lambda')),
    imageDirectory: path.join(FIXTURES, 'image'),
  });
  Aspects.of(app).add(new AwsSolutionsChecks());
  const template = Template.fromStack(stack);
  return { stack, template, json: template.toJSON() as CfnTemplate };
}

/** Logical ids of resources of a type, optionally filtered. */
export function idsOf(t: CfnTemplate, type: string, where: (r: CfnResource) => boolean = () => true): string[] {
  return Object.entries(t.Resources)
    .filter(([, r]) => r.Type === type && where(r))
    .map(([id]) => id);
}

export function resourcesOf(t: CfnTemplate, type: string): CfnResource[] {
  return Object.values(t.Resources).filter((r) => r.Type === type);
}

/** Subnet logical ids of one tier ('public' | 'app' | 'data'), by the tag CDK puts on them. */
export function subnetIds(t: CfnTemplate, tier: 'public' | 'app' | 'data'): string[] {
  return idsOf(t, 'AWS::EC2::Subnet', (r) =>
    (r.Properties?.Tags as { Key: string; Value: string }[]).some((tag) => tag.Key === 'aws-cdk:subnet-name' && tag.Value === tier),
  );
}

/** `[{Ref: a}, {Ref: b}]` -> `[a, b]`, sorted. */
export function refs(list: unknown): string[] {
  return (list as { Ref: string }[]).map((x) => x.Ref).sort();
}

/** The logical id a `{Ref}` or `{Fn::GetAtt: [id, ...]}` points to. */
export function target(v: unknown): string | undefined {
  const o = v as { Ref?: string; 'Fn::GetAtt'?: [string, string] };
  return o.Ref ?? o['Fn::GetAtt']?.[0];
}
