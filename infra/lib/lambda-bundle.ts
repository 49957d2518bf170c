import * as fs from 'node:fs';
import * as path from 'node:path';
import { AssetHashType, DockerImage } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { buildSync } from 'esbuild';

export interface BundleOptions {
  /** Directories copied next to `index.js` (e.g. SQL migrations read at run time from `__dirname`). */
  readonly copyDirs?: { readonly from: string; readonly to: string }[];
  /**
   * Packages with a native binary (sharp): left out of the bundle (`require` stays a require) and
   * copied into the asset's `node_modules/`, with their dependencies and the optional platform
   * packages npm would install for the Lambda's platform (`os`/`cpu`/`libc` of each package.json).
   */
  readonly nativeModules?: NativeModules;
  /**
   * Extra package.json export conditions. `module-sync` is what Node's require(esm) resolves
   * (Node >= 22): ESM-only packages that the code `require`s (file-type) are bundled through it.
   */
  readonly conditions?: readonly string[];
}

/** The platform the function runs on: Lambda's Node runtimes are Amazon Linux 2023 (glibc), x86_64 or arm64. */
export interface LambdaPlatform {
  readonly os: 'linux';
  readonly cpu: 'x64' | 'arm64';
  readonly libc: 'glibc';
}

export interface NativeModules {
  readonly packages: readonly string[];
  readonly platform: LambdaPlatform;
  /** Packages that must end up in the asset (the platform binaries): synth fails, with the npm command that installs them, when one is missing. */
  readonly required: readonly string[];
  /** Where the packages are installed (the repo's node_modules). */
  readonly nodeModules: string;
}

/** The `node_modules` directory Node would search first from `fromDir` (the repo's, for an entry in the repo). */
export function nearestNodeModules(fromDir: string): string {
  for (let dir = path.resolve(fromDir); ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'node_modules'))) return path.join(dir, 'node_modules');
    if (dir === path.dirname(dir)) throw new Error(`no node_modules above ${fromDir}`);
  }
}

/** The Lambda platform of an architecture. */
export function lambdaPlatform(architecture: lambda.Architecture): LambdaPlatform {
  return { os: 'linux', cpu: architecture.name === lambda.Architecture.ARM_64.name ? 'arm64' : 'x64', libc: 'glibc' };
}

interface PackageJson {
  name: string;
  version: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  os?: string[];
  cpu?: string[];
  libc?: string[];
}

/** npm's platform rule: a list allows what it names, `!x` excludes x, no list allows everything. */
function allows(list: string[] | undefined, value: string): boolean {
  if (!list || list.length === 0) return true;
  if (list.includes(`!${value}`)) return false;
  const positives = list.filter((x) => !x.startsWith('!'));
  return positives.length === 0 || positives.includes(value);
}

export function matchesPlatform(pkg: Pick<PackageJson, 'os' | 'cpu' | 'libc'>, p: LambdaPlatform): boolean {
  return allows(pkg.os, p.os) && allows(pkg.cpu, p.cpu) && allows(pkg.libc, p.libc);
}

/** The installed directory of `name` as Node would find it from `fromDir` (nearest node_modules up the tree). */
function findPackageDir(name: string, fromDir: string, root: string): string | undefined {
  for (let dir = fromDir; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'node_modules', name);
    if (fs.existsSync(path.join(candidate, 'package.json'))) return candidate;
    if (dir === root || dir === path.dirname(dir)) break;
  }
  const top = path.join(root, 'node_modules', name);
  return fs.existsSync(path.join(top, 'package.json')) ? top : undefined;
}

/**
 * Copies native packages and their dependency closure (flat) into `outDir/node_modules`. Returns
 * the packages copied (`name@version`).
 */
export function copyNativeModules(outDir: string, n: NativeModules): string[] {
  const root = path.dirname(path.resolve(n.nodeModules));
  const copied = new Map<string, string>();
  const visit = (name: string, fromDir: string, optional: boolean): void => {
    const dir = findPackageDir(name, fromDir, root);
    if (!dir) {
      if (optional) return;
      throw new Error(`Lambda bundle: ${name} is not installed (npm ci)`);
    }
    const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as PackageJson;
    if (!matchesPlatform(pkg, n.platform)) {
      if (optional) return;
      throw new Error(`Lambda bundle: ${name} is for ${JSON.stringify({ os: pkg.os, cpu: pkg.cpu, libc: pkg.libc })}, not ${JSON.stringify(n.platform)}`);
    }
    const seen = copied.get(name);
    if (seen !== undefined) {
      if (seen !== pkg.version) throw new Error(`Lambda bundle: ${name} is needed at ${seen} and ${pkg.version} (flat node_modules holds one)`);
      return;
    }
    copied.set(name, pkg.version);
    // The package's own nested node_modules are not copied as such: its dependencies are visited below.
    fs.cpSync(dir, path.join(outDir, 'node_modules', name), {
      recursive: true,
      dereference: true,
      filter: (src) => path.relative(dir, src).split(path.sep)[0] !== 'node_modules',
    });
    for (const dep of Object.keys(pkg.dependencies ?? {})) visit(dep, dir, false);
    for (const dep of Object.keys(pkg.optionalDependencies ?? {})) visit(dep, dir, true);
  };
  for (const name of n.packages) visit(name, root, false);
  const missing = n.required.filter((r) => !copied.has(r));
  if (missing.length > 0) {
    throw new Error(
      `Lambda bundle: ${missing.join(', ')} (the ${n.platform.os}-${n.platform.cpu}-${n.platform.libc} binaries the function needs) are not installed; ` +
      `install them next to the host's with \`npm install --os=${n.platform.os} --cpu=${n.platform.cpu} --libc=${n.platform.libc} ${n.packages.join(' ')}\` ` +
      'or deploy the function on the architecture whose binaries are installed.',
    );
  }
  return [...copied].map(([name, version]) => `${name}@${version}`).sort();
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
  const native = options.nativeModules;
  // A native package and its subpaths stay requires, resolved from the asset's node_modules at run time.
  const nativeExternals = (native?.packages ?? []).flatMap((p) => [p, `${p}/*`]);
  // The asset hash is taken from the bundle, so the source dir is never fingerprinted.
  return lambda.Code.fromAsset(path.dirname(absEntry), {
    assetHashType: AssetHashType.OUTPUT,
    bundling: {
      image: DockerImage.fromRegistry('unused-local-esbuild-bundling'),
      // Never run (local bundling always succeeds), but part of CDK's bundling cache key: two
      // entries in one directory (infra/runtime) must not share one cached bundle.
      command: ['local-esbuild', absEntry],
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
            external: ['pg-native', ...nativeExternals],
            ...(options.conditions ? { conditions: [...options.conditions] } : {}),
            sourcemap: true,
            minify: false,
            logLevel: 'error',
          });
          for (const dir of options.copyDirs ?? []) {
            fs.cpSync(dir.from, path.join(outputDir, dir.to), { recursive: true });
          }
          if (native) copyNativeModules(outputDir, native);
          return true;
        },
      },
    },
  });
}
