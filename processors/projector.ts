/** Applies read-model changes to the durable copy (DynamoDB) and the hot copy (Redis); both writes are version-guarded. */
import type { DurableStore, HotStore } from '../read-model/stores';
import type { ReadModelChange } from './projections';

export class Projector {
  constructor(
    private readonly durable: DurableStore,
    private readonly hot: HotStore,
  ) {}

  async apply(change: ReadModelChange): Promise<void> {
    const writes: Promise<boolean>[] = [this.durable.putRequest(change.request), this.hot.putRequest(change.request)];
    if (change.item) writes.push(this.durable.putItem(change.item), this.hot.putItem(change.item));
    await Promise.all(writes);
  }
}
