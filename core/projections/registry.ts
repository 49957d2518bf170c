/**
 * Projection registry (the model; its DynamoDB store is dynamodb/registry-store.ts): which deployed version of each projection is live, which are building or
 * kept for rollback, stored durably in a small DynamoDB table beside the read model (the read API
 * never touches PostgreSQL). Every version has its own items table and Redis key space; readers
 * resolve the live one here, processors project into every version that is not retired.
 *
 * No registry table, or no record for a projection, means the original deployment: version 1 on
 * ITEMS_TABLE and REDIS_PREFIX — so nothing needs provisioning until the first rebuild.
 */

/** How long a cached registry record may be used. A rebuild waits longer than this after registering a version, so every processor projects into it before the rebuild reads the log head. */
export const REGISTRY_CACHE_MS = 1000;
/** Extra wait on top of REGISTRY_CACHE_MS for clock and scheduling slack. */
export const REGISTRY_SETTLE_MS = REGISTRY_CACHE_MS * 2 + 500;

export type VersionState = 'building' | 'live' | 'kept' | 'retired';

export interface ProjectionVersion {
  n: number;
  /** Version of the projection code (`Projection.version`) this deployment is built with. */
  code: number;
  itemsTable: string;
  /** Redis prefix of this version's item keys (request status keys stay under the base prefix). */
  redisPrefix: string;
  state: VersionState;
  createdAt: string;
  switchedAt?: string;
  /** A kept (previous live) version is retired after this time. */
  retireAt?: string;
  retiredAt?: string;
  /** Rebuild progress: the log head folded up to, events done/total, the last item fully written. */
  source?: 'log' | 'stream';
  head?: string;
  total?: number;
  done?: number;
  cursor?: [string, string, string] | null;
  progressAt?: string;
}

export interface ProjectionRecord {
  name: string;
  rev: number;
  live: number;
  versions: Record<string, ProjectionVersion>;
}

export interface RegistryDefaults {
  itemsTable: string;
  redisPrefix: string;
  /** Code version of the original deployment. */
  code?: number;
}

export function defaultRecord(name: string, d: RegistryDefaults): ProjectionRecord {
  return {
    name,
    rev: 0,
    live: 1,
    versions: {
      '1': { n: 1, code: d.code ?? 1, itemsTable: d.itemsTable, redisPrefix: d.redisPrefix, state: 'live', createdAt: new Date(0).toISOString() },
    },
  };
}

export const registryTableName = (itemsTable: string) => `${itemsTable}-projections`;
export const versionItemsTable = (baseItemsTable: string, n: number) => `${baseItemsTable}-v${n}`;
export const versionRedisPrefix = (basePrefix: string, n: number) => `${basePrefix}v${n}:`;

/** Versions that receive live projection: everything not retired. */
export function activeVersions(rec: ProjectionRecord): ProjectionVersion[] {
  return Object.values(rec.versions).filter((v) => v.state !== 'retired');
}

export function liveVersion(rec: ProjectionRecord): ProjectionVersion {
  const v = rec.versions[String(rec.live)];
  if (!v) throw new Error(`projection ${rec.name}: live version ${rec.live} is not in the registry`);
  return v;
}

export class RegistryConflictError extends Error {
  override name = 'RegistryConflictError';
}

export interface ProjectionRegistry {
  get(name: string): Promise<ProjectionRecord>;
  /** The record if it is at hand and fresh, without I/O (undefined: use `get`). */
  peek?(name: string): ProjectionRecord | undefined;
}

/**
 * A registry record cached for at most `ttlMs`. Strict (processors): a record older than that is
 * never used, so a version registered for building is seen within the TTL — a failed refresh fails
 * the write, which is retried. Lenient (read API): a stale record is used while the registry is
 * unreachable, because a read never loses anything.
 */
export class CachedRegistry implements ProjectionRegistry {
  private readonly entries = new Map<string, { at: number; rec: ProjectionRecord }>();
  private readonly inflight = new Map<string, Promise<ProjectionRecord>>();

  constructor(
    private readonly source: ProjectionRegistry,
    private readonly opts: { strict: boolean; ttlMs?: number; now?: () => number },
  ) {}

  async get(name: string): Promise<ProjectionRecord> {
    const now = (this.opts.now ?? Date.now)();
    const hit = this.entries.get(name);
    if (hit && now - hit.at < (this.opts.ttlMs ?? REGISTRY_CACHE_MS)) return hit.rec;
    let p = this.inflight.get(name);
    if (!p) {
      // The fetch time is taken before the request, so the record's age is never understated.
      const started = now;
      p = this.source.get(name).then((rec) => {
        this.entries.set(name, { at: started, rec });
        return rec;
      }).finally(() => this.inflight.delete(name));
      this.inflight.set(name, p);
    }
    try {
      return await p;
    } catch (err) {
      if (!this.opts.strict && hit) return hit.rec;
      throw err;
    }
  }

  peek(name: string): ProjectionRecord | undefined {
    const hit = this.entries.get(name);
    return hit && (this.opts.now ?? Date.now)() - hit.at < (this.opts.ttlMs ?? REGISTRY_CACHE_MS) ? hit.rec : undefined;
  }

  invalidate(name?: string): void {
    if (name) this.entries.delete(name);
    else this.entries.clear();
  }
}

