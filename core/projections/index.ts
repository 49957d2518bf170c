/**
 * Projections and their versions, in one place: the definitions (plain values
 * `{ name, version, item }`), the catalog of code versions, the registry of deployed versions
 * (model in registry.ts, DynamoDB table in dynamodb/), one store per version, and the version
 * routing — read side (live.ts, the read API) and write side (fan-out.ts, the processors) — over
 * one shared helper (routing.ts).
 */
export * from './definitions';
export * from './catalog';
export * from './registry';
export * from './dynamodb/registry-store';
export * from './version-stores';
export * from './routing';
export * from './live';
export * from './fan-out';
