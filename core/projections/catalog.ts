/**
 * Projection code by name and version: `PROJECTIONS` holds the current code of each projection;
 * older or newer code versions that deployed versions still use are registered here, so a
 * processor projects each deployed version with the code it was built with.
 */
import type { ItemDocument, ItemState } from '../contracts';
import { PROJECTIONS, type Projection } from './definitions';

const extra = new Map<string, Map<number, Projection>>();

export function registerProjection(p: Projection): void {
  let m = extra.get(p.name);
  if (!m) extra.set(p.name, (m = new Map()));
  m.set(p.version, p);
}

export function unregisterProjection(name: string, version: number): void {
  extra.get(name)?.delete(version);
}

export function projectionNames(): string[] {
  return [...new Set([...Object.keys(PROJECTIONS), ...extra.keys()])];
}

/** The newest code version known for `name` (what a rebuild builds). */
export function latestProjection(name: string): Projection {
  const all = [PROJECTIONS[name], ...(extra.get(name)?.values() ?? [])].filter((p): p is Projection => !!p);
  if (all.length === 0) throw new UnknownProjectionError(`unknown projection "${name}" (known: ${projectionNames().join(', ')})`);
  return all.reduce((a, b) => (b.version > a.version ? b : a));
}

/** The code of `name` at `version`; the current code when that version is no longer in this build. */
export function projectionAt(name: string, version: number): Projection {
  const exact = extra.get(name)?.get(version) ?? (PROJECTIONS[name]?.version === version ? PROJECTIONS[name] : undefined);
  return exact ?? latestProjection(name);
}

export class UnknownProjectionError extends Error {
  override name = 'UnknownProjectionError';
}

/** The item state a v1-shaped item document carries (every items projection's input). */
export function stateFromDocument(tenant: string, collection: string, id: string, version: number, updatedAt: string, json: string | null): ItemState {
  if (json === null) return { tenant, collection, id, version, deleted: true, data: null, updatedAt };
  const doc = JSON.parse(json) as ItemDocument;
  return { tenant, collection, id, version, deleted: false, data: doc.data, updatedAt: doc.updatedAt ?? updatedAt };
}
