/**
 * One store per deployed version of a projection (its items table, its Redis key space), built
 * once and kept; and the wiring of registry + per-version stores for a composition root.
 */
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Redis } from 'ioredis';
import { type DurableStore, DynamoDurableStore, type HotStore, MemoryHotStore, type NearCacheLink, RedisHotStore } from '../read-store';
import { DynamoProjectionRegistry } from './dynamodb/registry-store';
import { type ProjectionVersion, registryTableName } from './registry';

/** Builds (and keeps) one store per version: items table or Redis prefix. */
export interface VersionStores {
  durable(v: ProjectionVersion): DurableStore;
  hot(v: ProjectionVersion): HotStore;
}

export function memoStores(durable: (table: string) => DurableStore, hot: (prefix: string) => HotStore): VersionStores {
  const d = new Map<string, DurableStore>();
  const h = new Map<string, HotStore>();
  return {
    durable(v) {
      let s = d.get(v.itemsTable);
      if (!s) d.set(v.itemsTable, (s = durable(v.itemsTable)));
      return s;
    },
    hot(v) {
      let s = h.get(v.redisPrefix);
      if (!s) h.set(v.redisPrefix, (s = hot(v.redisPrefix)));
      return s;
    },
  };
}

export interface VersionedWiring {
  doc: DynamoDBDocumentClient;
  /** Redis for the version key spaces; without it (single-node runs) each version gets an in-process hot copy. */
  redis?: Redis | undefined;
  itemsTable: string;
  requestsTable: string;
  redisPrefix: string;
  base: { durable: DurableStore; hot: HotStore };
  projection?: string;
  /** The read API's near cache, shared by every version's Redis hot store (its keys are full Redis keys). */
  near?: NearCacheLink | undefined;
}

/** The registry (uncached) and per-version stores of one projection, for a composition root. */
export function versionWiring(w: VersionedWiring): { registry: DynamoProjectionRegistry; stores: VersionStores; projection: string } {
  const registry = new DynamoProjectionRegistry(w.doc, registryTableName(w.itemsTable), { itemsTable: w.itemsTable, redisPrefix: w.redisPrefix });
  const stores = memoStores(
    (table) => (table === w.itemsTable ? w.base.durable : new DynamoDurableStore(w.doc, table, w.requestsTable)),
    (prefix) => (prefix === w.redisPrefix ? w.base.hot : w.redis ? new RedisHotStore(w.redis, prefix, undefined, w.near) : memoryVersionOf(w.base.hot, prefix)),
  );
  return { registry, stores, projection: w.projection ?? 'items' };
}

// Single-node runs share one in-process hot copy between processors and read API: so must its versions.
const memoryVersions = new WeakMap<HotStore, Map<string, HotStore>>();
function memoryVersionOf(base: HotStore, prefix: string): HotStore {
  let m = memoryVersions.get(base);
  if (!m) memoryVersions.set(base, (m = new Map()));
  let s = m.get(prefix);
  if (!s) m.set(prefix, (s = new MemoryHotStore()));
  return s;
}

