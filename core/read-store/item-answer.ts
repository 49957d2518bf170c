/** What a GET of an item answers: the stored JSON as bytes (null for a deleted item) and its version. */
export interface ItemAnswer {
  readonly version: number;
  /** `"<version>"` */
  readonly etag: string;
  readonly body: Buffer | null;
}

export function answerOf(version: number, body: Buffer | null): ItemAnswer {
  return { version, etag: `"${version}"`, body };
}

/**
 * The in-process cache a Redis hot store may fill and serve from (the read API's near cache,
 * read-model/near-cache.ts, implements it). Keys are full Redis keys; a fill is bracketed by
 * `beginFill`/`endFill` so an invalidation during the read is never overwritten.
 */
export interface NearCacheLink {
  get(key: string): ItemAnswer | undefined;
  beginFill(key: string): number;
  endFill(key: string, token: number, answer: ItemAnswer | undefined): void;
}
