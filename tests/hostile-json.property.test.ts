/**
 * Property test of the document contract against the real stack (issue #21). Generated documents
 * mix full-Unicode strings and member names, prototype-named members (`__proto__`, `constructor`,
 * ...), doubles from the whole range (-0, subnormals, ±max), deep and wide nesting, and injected
 * hazards (lone surrogates, U+0000, duplicate names, numbers a double cannot keep, nesting past 100).
 * The generator knows which hazards it put in, so the oracle is independent of core/document.ts:
 *
 * - the gateway never answers 5xx;
 * - a document with a hazard is refused with 400 naming one of those hazards' rules, and changes nothing;
 * - every accepted write (PUT, then a merge PATCH) gets exactly one final ack;
 * - a committed document reads back equal, member for member, to what was sent (member order and
 *   the sign of zero are not significant: README, "Documents").
 *
 * `npm test` runs HOSTILE_RUNS (default 20) cases from a fixed seed; `npm run fuzz:hostile` runs more
 * from a new seed each time. A failure prints the seed: HOSTILE_SEED=<seed> reproduces it.
 */
import fc from 'fast-check';
import { finalAckOf, storedFinals } from './helpers/processors';
import { startStack, type Stack } from './helpers/stack';

const RUNS = Number(process.env.HOSTILE_RUNS ?? 20);
const SEED = process.env.HOSTILE_SEED !== undefined
  ? Number(process.env.HOSTILE_SEED)
  : process.env.HOSTILE_RANDOM_SEED === '1' ? Math.floor(Math.random() * 2 ** 31) : 21_2121;
jest.setTimeout(Math.max(120_000, RUNS * 3_000));

let stack: Stack;
let token: string;

beforeAll(async () => {
  stack = await startStack('hostile_prop', { env: { MAX_BODY_BYTES: String(256 * 1024) } });
  token = await stack.token({ tenant: 'acme', sub: 'alice' });
});

afterAll(async () => {
  await stack?.close();
});

/** A generated piece of JSON: its exact text, the value it denotes, and the hazards it holds. */
interface Doc {
  text: string;
  value: unknown;
  hazards: readonly string[];
}

const define = (o: Record<string, unknown>, k: string, v: unknown) => Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
const noNul = (s: string) => !s.includes('\u0000');

const safeString = fc.string({ unit: 'binary', maxLength: 12 }).filter(noNul);
const memberName = fc.oneof(
  { weight: 2, arbitrary: safeString },
  fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', '__defineGetter__', 'valueOf'),
);

const cleanLeaf: fc.Arbitrary<Doc> = fc.oneof(
  { weight: 4, arbitrary: safeString.map((s) => ({ text: JSON.stringify(s), value: s, hazards: [] })) },
  { weight: 4, arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => ({ text: JSON.stringify(d), value: d, hazards: [] })) },
  fc.constantFrom<Doc>(
    { text: '-0', value: 0, hazards: [] },
    { text: '5e-324', value: 5e-324, hazards: [] },
    { text: '-1.7976931348623157e308', value: -1.7976931348623157e308, hazards: [] },
    { text: '9007199254740992', value: 9007199254740992, hazards: [] },
    { text: '1E2', value: 100, hazards: [] },
    { text: 'true', value: true, hazards: [] },
    { text: 'null', value: null, hazards: [] },
  ),
);
const hazardLeaf: fc.Arbitrary<Doc> = fc.oneof({ weight: 9, arbitrary: cleanLeaf }, fc.constantFrom<Doc>(
    { text: '"\\ud800"', value: undefined, hazards: ['lone-surrogate'] },
    { text: '"x\\udfff"', value: undefined, hazards: ['lone-surrogate'] },
    { text: '"\\udbff\\u0041"', value: undefined, hazards: ['lone-surrogate'] },
    { text: '"a\\u0000b"', value: undefined, hazards: ['nul-character'] },
    { text: '1e400', value: undefined, hazards: ['number-range'] },
    { text: '-1e400', value: undefined, hazards: ['number-range'] },
    { text: '1e-400', value: undefined, hazards: ['number-range'] },
    { text: '12345678901234567890', value: undefined, hazards: ['number-precision'] },
    { text: '0.10000000000000000001', value: undefined, hazards: ['number-precision'] },
));

function object(members: Array<[string, Doc]>, dupAt?: number, badName?: string): Doc {
  const value: Record<string, unknown> = {};
  const parts: string[] = [];
  const hazards: string[] = [];
  const seen = new Set<string>();
  for (const [k, d] of members) {
    if (seen.has(k)) continue; // distinct names unless a duplicate is injected on purpose
    seen.add(k);
    parts.push(`${JSON.stringify(k)}:${d.text}`);
    define(value, k, d.value);
    hazards.push(...d.hazards);
  }
  if (dupAt !== undefined && members.length > 0) {
    const [k, d] = members[dupAt % members.length]!;
    parts.push(`${JSON.stringify(k)}:${d.text}`);
    hazards.push('duplicate-key', ...d.hazards);
  }
  if (badName !== undefined) {
    parts.push(`"${badName}":1`);
    hazards.push(badName.includes('u0000') ? 'nul-character' : 'lone-surrogate');
  }
  return { text: `{${parts.join(',')}}`, value, hazards };
}

const treeOf = (h: boolean) => fc.letrec<{ node: Doc }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    h ? hazardLeaf : cleanLeaf,
    fc.array(tie('node'), { maxLength: 5 }).map((items) => ({
      text: `[${items.map((i) => i.text).join(',')}]`, value: items.map((i) => i.value), hazards: items.flatMap((i) => i.hazards),
    })),
    fc.tuple(
      fc.array(fc.tuple(memberName, tie('node')), { maxLength: 6 }),
      h ? fc.option(fc.nat(), { freq: 12, nil: undefined }) : fc.constant(undefined),
      h ? fc.option(fc.constantFrom('\\ud800', 'k\\udc00', 'k\\u0000'), { freq: 15, nil: undefined }) : fc.constant(undefined),
    ).map(([members, dup, bad]) => object(members, dup, bad)),
  ),
})).node;

/** A leaf wrapped in `levels` arrays: the document is then levels + 1 deep. */
const deepOf = (h: boolean) => fc.tuple(fc.integer({ min: 1, max: h ? 130 : 99 }), h ? hazardLeaf : cleanLeaf).map(([levels, l]): Doc => ({
  text: `${'['.repeat(levels)}${l.text}${']'.repeat(levels)}`,
  value: Array.from({ length: levels }).reduce<unknown>((v) => [v], l.value),
  hazards: [...l.hazards, ...(levels + 1 > 100 ? ['max-depth'] : [])],
}));

const wideOf = (h: boolean) => fc.array(fc.tuple(memberName, h ? hazardLeaf : cleanLeaf), { minLength: 50, maxLength: 300 }).map((m) => object(m));

/**
 * A document: an object whose members are trees, deep values and wide objects. Half the documents
 * may hold hazards, half are clean (else nearly every document would be refused and the read-back
 * property would rarely run).
 */
const docOf = (h: boolean) =>
  fc.tuple(fc.array(fc.tuple(memberName, fc.oneof(treeOf(h), deepOf(h), wideOf(h))), { maxLength: 5 }), h ? fc.option(fc.nat(), { freq: 15, nil: undefined }) : fc.constant(undefined))
    .map(([members, dup]) => object(members, dup));
const documentArb = fc.oneof(docOf(false), docOf(true));

/** JSON with members sorted (own members only, so `__proto__` is one); -0 prints as 0. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** RFC 7396, written here independently of processors/decide.ts. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const base = target !== null && typeof target === 'object' && !Array.isArray(target) ? target as Record<string, unknown> : {};
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(base)) define(out, k, base[k]);
  for (const k of Object.keys(patch)) {
    const pv = (patch as Record<string, unknown>)[k];
    if (pv === null) delete out[k];
    else define(out, k, mergePatch(Object.prototype.hasOwnProperty.call(out, k) ? out[k] : undefined, pv));
  }
  return out;
}

async function write(method: 'PUT' | 'PATCH', id: string, text: string) {
  const res = await fetch(`${stack.gatewayUrl}/v1/collections/notes/items/${id}`, {
    method, body: text,
    headers: { authorization: `Bearer ${token}`, 'content-type': method === 'PUT' ? 'application/json' : 'application/merge-patch+json' },
  });
  const body = await res.text();
  if (res.status >= 500) throw new Error(`the gateway answered ${res.status} to ${method} ${text.slice(0, 200)}: ${body}`);
  return { status: res.status, body: JSON.parse(body) as Record<string, any> };
}

async function read(id: string, minVersion = 0) {
  const res = await fetch(`${stack.readUrl}/v1/collections/notes/items/${id}${minVersion ? `?minVersion=${minVersion}` : ''}`, { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, body: res.status === 200 ? (JSON.parse(await res.text()) as { version: number; data: unknown }) : undefined };
}

let n = 0;
const accepted: string[] = [];
const seen = { refused: 0, readBack: 0 };

/** One write's contract; returns the item's expected state after it. */
async function check(method: 'PUT' | 'PATCH', id: string, doc: Doc, before: { version: number; data: unknown } | undefined) {
  const res = await write(method, id, doc.text);
  if (doc.hazards.length) {
    expect(res.status).toBe(400);
    expect(doc.hazards).toContain(res.body.rule);
    const now = await read(id);
    expect(now.body?.version).toBe(before?.version);
    seen.refused++;
    return before;
  }
  expect([method, res.status, res.body]).toEqual([method, 202, expect.anything()]);
  accepted.push(res.body.requestId);
  const ack = await finalAckOf(stack, res.body.requestId);
  if (method === 'PATCH' && !before) {
    expect(ack).toMatchObject({ stage: 'rejected', reason: { code: 'not_found' } });
    return before;
  }
  expect(ack).toMatchObject({ stage: 'committed' });
  const expected = method === 'PUT' ? doc.value : mergePatch(before!.data, doc.value);
  const got = await read(id, ack.version!);
  expect(got.body?.version).toBe(ack.version);
  expect(canonical(got.body!.data)).toBe(canonical(expected));
  seen.readBack++;
  return { version: ack.version!, data: expected };
}

test('every write gets one final ack, a committed document reads back as sent, a refused one changes nothing', async () => {
  try {
    await fc.assert(
      fc.asyncProperty(documentArb, documentArb, async (put, patch) => {
        const id = `p${++n}`;
        const afterPut = await check('PUT', id, put, undefined);
        await check('PATCH', id, patch, afterPut);
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    );
    const finals = await storedFinals(stack);
    for (const requestId of accepted) expect([requestId, finals.filter((a) => a.requestId === requestId).length]).toEqual([requestId, 1]);
    // Both sides of the contract were exercised.
    expect(seen.refused).toBeGreaterThan(0);
    expect(seen.readBack).toBeGreaterThan(0);
  } catch (err) {
    throw new Error(`hostile-json property failed with seed ${SEED} (reproduce: HOSTILE_SEED=${SEED} HOSTILE_RUNS=${RUNS}):\n${(err as Error).message}`);
  }
});
