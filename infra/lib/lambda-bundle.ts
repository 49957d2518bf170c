import * as fs from 'node:fs';
import * as path from 'node:path';
import { AssetHashType, DockerImage } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { buildSync } from 'esbuild';

/**
 * Bundles a TypeScript Lambda entry with esbuild in-process at synth time.
 * No Docker: `tryBundle` always succeeds or throws, so CDK never falls back to
 * a bundling container (this machine has no Docker and no internet).
 *
 * Output: `index.js` (CommonJS, node22) exporting the entry's exports; the AWS
 * SDK v3 is left external because the Lambda runtime ships it.
 */
export function esbuildLambdaCode(entry: string): lambda.Code {
  const absEntry = path.resolve(entry);
  if (!fs.existsSync(absEntry)) {
    throw new Error(`Lambda entry ${absEntry} does not exist (pass -c processorEntry=... or build the services first)`);
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
            external: ['@aws-sdk/*', 'pg-native'],
            sourcemap: true,
            minify: false,
            logLevel: 'error',
          });
          return true;
        },
      },
    },
  });
}
