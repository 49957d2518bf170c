/**
 * The write side's pure decisions (processors/decide.ts), without servers: what `decide` accepts
 * or rejects, that `evolve` rebuilds the same state from the event it produced (what a rebuild
 * relies on), and JSON Merge Patch (RFC 7396).
 */
import fc from 'fast-check';
import type { Command, ItemState, JsonObject } from '../../core/contracts';
import { applyMergePatch, decide, evolve } from '../../processors/decide';

const leaf = fc.oneof(fc.string({ maxLength: 5 }), fc.integer(), fc.boolean());
const jsonObject: fc.Arbitrary<JsonObject> = fc.letrec((tie) => ({
  obj: fc.dictionary(fc.constantFrom('a', 'b', 'c', 'd'), fc.oneof({ depthSize: 'small' }, leaf, tie('obj'), fc.array(leaf, { maxLength: 2 }))),
})).obj as fc.Arbitrary<JsonObject>;
/** A merge patch: like an object, but any value may be null (remove). */
const patchObject: fc.Arbitrary<JsonObject> = fc.letrec((tie) => ({
  obj: fc.dictionary(fc.constantFrom('a', 'b', 'c', 'd'), fc.oneof({ depthSize: 'small' }, leaf, fc.constant(null), tie('obj'))),
})).obj as fc.Arbitrary<JsonObject>;

const state = (o: Partial<ItemState> = {}): ItemState => ({
  tenant: 't', collection: 'c', id: 'i', version: 3, deleted: false, data: { a: 1 }, updatedAt: '2026-01-01T00:00:00.000Z', ...o,
});
const command = (o: Partial<Command> = {}): Command => ({
  v: 1, requestId: 'r1', kind: 'put', tenant: 't', principal: 'p', collection: 'c', id: 'i', data: { a: 2 }, receivedAt: '2026-01-01T00:00:00.000Z', ...o,
});

const stateArb = fc.option(
  fc.record({ version: fc.integer({ min: 1, max: 50 }), deleted: fc.boolean(), data: jsonObject }).map(({ version, deleted, data }) =>
    state({ version, deleted, data: deleted ? null : data })),
  { nil: undefined },
);
const commandArb = fc.record({
  kind: fc.constantFrom('put', 'patch', 'delete') as fc.Arbitrary<Command['kind']>,
  data: patchObject,
  ifMatch: fc.option(fc.integer({ min: 1, max: 50 }), { nil: undefined }),
  ifNoneMatch: fc.option(fc.constant(true as const), { nil: undefined }),
}).map(({ kind, data, ifMatch, ifNoneMatch }) => command({
  kind, ...(kind === 'delete' ? { data: undefined } : { data: kind === 'put' ? stripNulls(data) : data }),
  ...(ifMatch !== undefined ? { ifMatch } : {}), ...(ifNoneMatch ? { ifNoneMatch } : {}),
}));

function stripNulls(o: JsonObject): JsonObject {
  return JSON.parse(JSON.stringify(o, (_k, v: unknown) => (v === null ? undefined : v))) as JsonObject;
}

describe('decide', () => {
  test('a put of a new item is version 1 with the document as given', () => {
    expect(decide(command({ data: { x: 1 } }), undefined)).toEqual({
      kind: 'accept', type: 'ItemPut', eventData: { x: 1 }, version: 1, deleted: false, data: { x: 1 },
    });
  });

  test('patch and delete of a missing or deleted item are rejected not_found', () => {
    for (const kind of ['patch', 'delete'] as const) {
      expect(decide(command({ kind }), undefined)).toMatchObject({ kind: 'reject', reason: { code: 'not_found' } });
      expect(decide(command({ kind }), state({ deleted: true, data: null }))).toMatchObject({ kind: 'reject', reason: { code: 'not_found' } });
    }
  });

  test('If-None-Match: * refuses an existing item and allows a deleted one', () => {
    expect(decide(command({ ifNoneMatch: true }), state())).toMatchObject({ kind: 'reject', reason: { code: 'already_exists' } });
    expect(decide(command({ ifNoneMatch: true }), state({ deleted: true, data: null, version: 4 }))).toMatchObject({ kind: 'accept', version: 5 });
  });

  test('If-Match must equal the current version', () => {
    expect(decide(command({ ifMatch: 2 }), state({ version: 3 }))).toMatchObject({ kind: 'reject', reason: { code: 'version_conflict' } });
    expect(decide(command({ ifMatch: 3 }), state({ version: 3 }))).toMatchObject({ kind: 'accept', version: 4 });
    expect(decide(command({ ifMatch: 1 }), undefined)).toMatchObject({ kind: 'reject', reason: { code: 'version_conflict' } });
  });

  test('a patch merges into the current document; versions keep counting across a delete', () => {
    expect(decide(command({ kind: 'patch', data: { b: { c: 1 }, a: null } }), state({ data: { a: 1, b: { d: 2 } } })))
      .toMatchObject({ kind: 'accept', type: 'ItemPatched', version: 4, data: { b: { c: 1, d: 2 } }, eventData: { b: { c: 1 }, a: null } });
    expect(decide(command(), state({ version: 7, deleted: true, data: null }))).toMatchObject({ kind: 'accept', version: 8 });
  });

  test('property: an accepted command advances the version by one; evolve on its event gives the same next state', () => {
    fc.assert(fc.property(stateArb, commandArb, (st, cmd) => {
      const d = decide(cmd, st);
      if (d.kind === 'reject') return;
      expect(d.version).toBe((st?.version ?? 0) + 1);
      expect(evolve(st, { type: d.type, data: d.eventData, version: d.version })).toEqual({ version: d.version, deleted: d.deleted, data: d.data });
    }), { numRuns: 500 });
  });

  test('property: a rejection never depends on the document sent, only on preconditions and existence', () => {
    fc.assert(fc.property(stateArb, commandArb, patchObject, (st, cmd, other) => {
      const withOther = cmd.kind === 'delete' ? cmd : { ...cmd, data: cmd.kind === 'put' ? stripNulls(other) : other };
      expect(decide(withOther, st).kind).toBe(decide(cmd, st).kind);
    }), { numRuns: 300 });
  });
});

describe('applyMergePatch (RFC 7396)', () => {
  test("the RFC's examples", () => {
    expect(applyMergePatch({ a: 'b' }, { a: 'c' })).toEqual({ a: 'c' });
    expect(applyMergePatch({ a: 'b' }, { b: 'c' })).toEqual({ a: 'b', b: 'c' });
    expect(applyMergePatch({ a: 'b' }, { a: null })).toEqual({});
    expect(applyMergePatch({ a: 'b', b: 'c' }, { a: null })).toEqual({ b: 'c' });
    expect(applyMergePatch({ a: ['b'] }, { a: 'c' })).toEqual({ a: 'c' });
    expect(applyMergePatch({ a: 'c' }, { a: ['b'] })).toEqual({ a: ['b'] });
    expect(applyMergePatch({ a: { b: 'c' } }, { a: { b: 'd', c: null } })).toEqual({ a: { b: 'd' } });
    expect(applyMergePatch({ a: [{ b: 'c' }] }, { a: [1] })).toEqual({ a: [1] });
    expect(applyMergePatch({ e: null } as JsonObject, { a: 1 })).toEqual({ e: null, a: 1 });
    expect(applyMergePatch({}, { a: { bb: { ccc: null } } })).toEqual({ a: { bb: {} } });
  });

  test('property: idempotent, leaves its inputs untouched, and removes exactly the keys patched with null', () => {
    fc.assert(fc.property(jsonObject, patchObject, (target, patch) => {
      const t0 = structuredClone(target);
      const p0 = structuredClone(patch);
      const once = applyMergePatch(target, patch);
      expect(target).toEqual(t0);
      expect(patch).toEqual(p0);
      expect(applyMergePatch(once, patch)).toEqual(once);
      for (const [k, v] of Object.entries(patch)) {
        if (v === null) expect(k in once).toBe(false);
        else if (typeof v !== 'object' || Array.isArray(v)) expect(once[k]).toEqual(v);
      }
      for (const k of Object.keys(target)) if (!(k in patch)) expect(once[k]).toEqual(target[k]);
    }), { numRuns: 500 });
  });
});
