import * as fs from 'node:fs';
import * as path from 'node:path';
import { AssetHashType, DockerImage } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { buildSync } from 'esbuild';

export interface BundleOptions {
  /** Directories copied next to `index.js` (e.g. SQL migrations read at run time from `__dirname`). */
  readonly copyDirs?: { readonly from: string; readonly to: string }[];
}

/**
 * Bundles a TypeScript Lambda entry with esbuild in-process at synth time.
 * No Docker: `tryBundle` always succeeds or throws, so CDK never falls back to
 * a bundling container (this machine has no Docker and no internet).
 *
 * Output: `index.js` (CommonJS, node22) exporting the entry's exports. The AWS
 * SDK v3 is bundled too, at the versions package-lock.json pins: the code runs
 * with the clients it was tested with, not whatever the Lambda runtime ships.
 */
export function esbuildLambdaCode(entry: string, options: BundleOptions = {}): lambda.Code {
  const absEntry = path.resolve(entry);
  if (!fs.existsSync(absEntry)) {
    throw new Error(`Lambda entry ${absEntry} does not exist (pass -c processorEntry=... or build the services first)`);
  }
  for (const dir of options.copyDirs ?? []) {
    if (!fs.existsSync(dir.from)) throw new Error(`Lambda bundle: ${dir.from} does not exist`);
  }
  // The asset hash is taken from the bundle, so the source dir is never fingerprinted.
  return lambda.Code.fromAsset(path.dirname(absEntry), {
    assetHashType: AssetHashType.OUTPUT,
    bundling: {
      image: DockerImage.fromRegistry('unused-local-esbuild-bundling'),
      local: {
        tryBundle(outputDir: string): boolean {
          buildSync({
            entryPoints: [absEntry],
            outfile: path.join(outputDir, 'index.js'),
            bundle: true,
            platform: 'node',
            target: 'node22',
            format: 'cjs',
            // pg-native is an optional require of pg that is never taken.
            external: ['pg-native'],
            sourcemap: true,
            minify: false,
            logLevel: 'error',
          });
          for (const dir of options.copyDirs ?? []) {
            fs.cpSync(dir.from, path.join(outputDir, dir.to), { recursive: true });
          }
          return true;
        },
      },
    },
  });
}
