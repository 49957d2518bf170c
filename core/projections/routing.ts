/**
 * The version routing both sides share (read side: live.ts, write side: fan-out.ts): which
 * deployed version of a projection an item operation goes to — the live one, or every active one —
 * resolved through the registry. Request statuses are not versioned: they always use the base store.
 */
import type { DurableStore, HotStore } from '../read-store';
import { activeVersions, liveVersion, type ProjectionRecord, type ProjectionRegistry, type ProjectionVersion } from './registry';
import type { VersionStores } from './version-stores';

export class VersionRouting {
  constructor(
    readonly registry: ProjectionRegistry,
    readonly projection: string,
    readonly stores: VersionStores,
  ) {}

  record(): Promise<ProjectionRecord> {
    return this.registry.get(this.projection);
  }

  /** The record if the registry has it fresh at hand, without I/O. */
  peek(): ProjectionRecord | undefined {
    return this.registry.peek?.(this.projection);
  }

  async live(): Promise<ProjectionVersion> {
    return liveVersion(await this.record());
  }

  async liveDurable(): Promise<DurableStore> {
    return this.stores.durable(await this.live());
  }

  async liveHot(): Promise<HotStore> {
    return this.stores.hot(await this.live());
  }

  /** Every version that receives writes (building, live, kept), with the number of the live one. */
  async active(): Promise<{ live: number; versions: ProjectionVersion[] }> {
    const rec = await this.record();
    return { live: rec.live, versions: activeVersions(rec) };
  }
}
