/**
 * Synthesizes a stage the way `cdk synth` does (infra/bin/app.ts): the processors bundled from
 * processors/lambda.ts, the attachment worker from worker/lambda.ts (+ sharp's binaries), the migration function from infra/runtime/migrate-handler.ts + the SQL files,
 * the repo as the image context; into a cloud assembly directory, so tests can read the very
 * bundles that `cdk deploy` would upload. cdk-nag is left to ackstream-stack.test.ts.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App } from 'aws-cdk-lib';
import { AckstreamStack } from '../../infra/lib/ackstream-stack';
import type { StageConfig } from '../../infra/lib/config';
import type { CfnTemplate } from './support';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const cdkJson = require('../../cdk.json') as { context: Record<string, unknown> };
export const REPO_ROOT = path.resolve(__dirname, '..', '..');

export interface RealSynth {
  readonly outdir: string;
  readonly templateFile: string;
  readonly json: CfnTemplate;
  /** The directory of a Lambda function's code asset (by logical id of the function). */
  assetDirOf(functionLogicalId: string): string;
  cleanup(): void;
}

export function synthReal(config: StageConfig): RealSynth {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), `ackstream-synth-${config.stage}-`));
  const app = new App({ outdir, context: { ...cdkJson.context, stage: config.stage } });
  const stack = new AckstreamStack(app, `Ackstream-${config.stage}`, {
    env: { account: '123456789012', region: config.region },
    config,
    processor: { entry: path.join(REPO_ROOT, 'processors/lambda.ts') },
    attachmentWorker: { entry: path.join(REPO_ROOT, 'worker/lambda.ts') },
    imageDirectory: REPO_ROOT,
    repoRoot: REPO_ROOT,
  });
  const assembly = app.synth();
  const templateFile = path.join(assembly.directory, stack.templateFile);
  const json = JSON.parse(fs.readFileSync(templateFile, 'utf8')) as CfnTemplate;
  return {
    outdir,
    templateFile,
    json,
    assetDirOf(id) {
      const fn = json.Resources[id];
      const key = (fn?.Properties?.['Code'] as { S3Key?: string } | undefined)?.S3Key;
      if (!key) throw new Error(`${id} has no S3 code asset`);
      const dir = path.join(assembly.directory, `asset.${key.replace(/\.zip$/, '')}`);
      if (!fs.existsSync(path.join(dir, 'index.js'))) throw new Error(`asset of ${id} not found at ${dir}`);
      return dir;
    },
    cleanup: () => fs.rmSync(outdir, { recursive: true, force: true }),
  };
}

/**
 * A CloudFormation value as a plain string for schema checks: literal strings as they are, a
 * reference or attribute as a recognisable placeholder, joins joined. What CloudFormation fills in
 * at deploy time is unknown offline; its *shape* (a URL prefix, a suffix) is kept.
 */
export function resolveLocal(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  const o = v as Record<string, unknown>;
  if ('Ref' in o) return `ref-${String(o.Ref)}`;
  if ('Fn::GetAtt' in o) return `att-${(o['Fn::GetAtt'] as string[]).join('-')}`;
  if ('Fn::Join' in o) {
    const [sep, parts] = o['Fn::Join'] as [string, unknown[]];
    return parts.map(resolveLocal).join(sep);
  }
  if ('Fn::Select' in o) return `sel-${JSON.stringify(o).length}`;
  return `cfn-${Object.keys(o)[0]}`;
}
