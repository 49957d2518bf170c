/**
 * The document contract (core/document.ts) as rules: what JSON text and values are refused, with
 * which rule and which JSON Pointer; that no nesting depth can overflow the check; that member
 * names like `__proto__` are data everywhere a document is rebuilt; and which database failures
 * are deterministic data errors (real PostgreSQL errors, classified by processors/failures.ts).
 */
import { Client } from 'pg';
import { CommandSchema } from '../core/contracts';
import { checkDocumentValue, checkJsonText, decodeUtf8, MAX_DEPTH, MAX_KEYS, numberRule, parseQuery } from '../core/document';
import { applyMergePatch, decide } from '../processors/decide';
import { classifyFailure, deterministicRejection } from '../processors/failures';
import { BASE_DATABASE_URL } from './helpers/stack';

const nested = (depth: number, open = '[', close = ']') => `${open.repeat(depth)}${close.repeat(depth)}`;

describe('JSON text: each rule names the rule and the JSON Pointer of the first offending place', () => {
  test.each([
    ['{"s":"\\ud800"}', 'lone-surrogate', '/s'],
    ['{"s":"x\\udc00"}', 'lone-surrogate', '/s'],
    ['{"s":"\\ud83d\\u0041"}', 'lone-surrogate', '/s'],
    ['{"\\ud800":1}', 'lone-surrogate', '/\ud800'],
    ['{"s":"a\\u0000b"}', 'nul-character', '/s'],
    ['{"a":[{"k\\u0000":1}]}', 'nul-character', '/a/0/k\u0000'],
    ['{"dup":1,"dup":2}', 'duplicate-key', '/dup'],
    ['{"a":{"x":1,"y":{},"x":3}}', 'duplicate-key', '/a/x'],
    ['{"big":1e400}', 'number-range', '/big'],
    ['{"neg":-1e400}', 'number-range', '/neg'],
    ['{"tiny":[1e-400]}', 'number-range', '/tiny/0'],
    ['{"n":12345678901234567890}', 'number-precision', '/n'],
    ['{"n":9007199254740993}', 'number-precision', '/n'],
    ['{"pi":3.141592653589793238462643383279}', 'number-precision', '/pi'],
    ['{"a/b":{"~x":"\\ud800"}}', 'lone-surrogate', '/a~1b/~0x'],
    [`{"d":${nested(MAX_DEPTH)}}`, 'max-depth', `/d${'/0'.repeat(MAX_DEPTH - 1)}`],
  ])('%s → %s at %s', (text, rule, pointer) => {
    expect(checkJsonText(text)).toMatchObject({ rule, pointer });
    expect(checkJsonText(text)!.message).toContain(`(rule ${rule})`);
  });

  test.each([
    '{"__proto__":{"x":1},"constructor":{"prototype":{"y":2}},"prototype":null,"toString":"s"}',
    '{"emoji":"\\ud83d\\ude00 😀","nul-free":"\\u0001\\u001f","bom":"\\ufeff"}',
    '{"zero":-0,"min":5e-324,"max":1.7976931348623157e308,"tenth":0.1,"e":1E2,"int":9007199254740992,"big":1e21,"f":-1.5e-7}',
    `{"d":${nested(MAX_DEPTH - 1)}}`,
    '{}',
  ])('accepted: %s', (text) => {
    expect(checkJsonText(text)).toBeUndefined();
  });

  test('nesting 10,000 and 250,000 deep is a max-depth violation or a syntax error, never a stack overflow', () => {
    expect(checkJsonText(`{"d":${nested(10_000)}}`)).toMatchObject({ rule: 'max-depth' });
    expect(checkJsonText(`{"d":${nested(10_000, '{"a":', '}').replace(/\{"a":\}/, '{"a":1}')}}`)).toMatchObject({ rule: 'max-depth' });
    expect(checkJsonText(`{"d":${'['.repeat(250_000)}`)).toMatchObject({ rule: 'syntax', position: 250_005 });
  });

  test('a syntax error anywhere wins over a rule broken before it (the text is not JSON at all)', () => {
    expect(checkJsonText('{"a":"\\ud800","b":tru}')).toMatchObject({ rule: 'syntax', position: 18 });
    expect(checkJsonText('{"a":1,}')).toMatchObject({ rule: 'syntax', position: 7 });
  });

  test('more than MAX_KEYS members in the whole document', () => {
    const wide = (n: number) => `{${Array.from({ length: n }, (_, i) => `"k${i}":${i}`).join(',')}}`;
    expect(checkJsonText(wide(MAX_KEYS))).toBeUndefined();
    expect(checkJsonText(wide(MAX_KEYS + 1))).toMatchObject({ rule: 'max-keys', pointer: `/k${MAX_KEYS}` });
  });

  test('numbers: kept exactly when the literal is the value a double holds, -0 is zero', () => {
    for (const ok of ['0', '-0', '0.0', '1', '1.0', '100e-2', '0.1', '5e-324', '2.2250738585072014e-308', '1.7976931348623157e308', '9007199254740992', '1e21']) {
      expect([ok, numberRule(ok)]).toEqual([ok, undefined]);
    }
    expect(numberRule('1.7976931348623159e308')).toMatchObject({ rule: 'number-range' });
    expect(numberRule('4.9406564584124654e-324')).toMatchObject({ rule: 'number-precision' });
    expect(numberRule('0.30000000000000001')).toMatchObject({ rule: 'number-precision' });
    // 2^60 is a double, but it reads back in its shortest form (1152921504606847000): refused, not rewritten.
    expect(numberRule('1152921504606846976')).toMatchObject({ rule: 'number-precision', message: expect.stringContaining('1152921504606847000') });
  });

  test('bytes that are not well-formed UTF-8 are refused, not replaced with U+FFFD', () => {
    expect(decodeUtf8(Buffer.from([0x7b, 0x7d]))).toBe('{}');
    expect(decodeUtf8(Buffer.from([0x7b, 0x22, 0xed, 0xa0, 0x80, 0x22]))).toMatchObject({ rule: 'utf-8' });
    expect(decodeUtf8(Buffer.from([0x7b, 0x22, 0xff]))).toMatchObject({ rule: 'utf-8', position: 2 });
  });
});

describe('query strings', () => {
  test('decoded strictly; U+0000, bad UTF-8 and a parameter given twice are refused', () => {
    expect(parseQuery('limit=5&cursor=a%2Bb+c')).toEqual(new Map([['limit', '5'], ['cursor', 'a+b c']]));
    expect(parseQuery('limit=5&limit=6')).toMatchObject({ rule: 'duplicate-key', pointer: '/limit' });
    expect(parseQuery('cursor=%ED%A0%80')).toMatchObject({ rule: 'utf-8' });
    expect(parseQuery('cursor=%ff')).toMatchObject({ rule: 'utf-8' });
    expect(parseQuery('cursor=a%00b')).toMatchObject({ rule: 'nul-character', pointer: '/cursor' });
  });
});

describe('parsed values (the processors\' own defence and the client SDK)', () => {
  test.each([
    [{ s: '\ud800' }, 'lone-surrogate', '/s'],
    [{ a: [{ ['\udfff']: 1 }] }, 'lone-surrogate', '/a/0/\udfff'],
    [{ s: 'a\u0000' }, 'nul-character', '/s'],
    [{ n: Infinity }, 'number-range', '/n'],
    [{ n: NaN }, 'number-range', '/n'],
    [{ u: undefined }, 'not-json', '/u'],
    [{ d: new Date(0) }, 'not-json', '/d'],
    [{ b: 1n }, 'not-json', '/b'],
  ])('%p → %s at %s', (value, rule, pointer) => {
    expect(checkDocumentValue(value)).toMatchObject({ rule, pointer });
  });

  test('depth, members and size are checked without recursion', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 50_000; i++) deep = [deep];
    expect(checkDocumentValue({ deep })).toMatchObject({ rule: 'max-depth' });
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(checkDocumentValue(cyclic)).toMatchObject({ rule: 'max-depth' });
    expect(checkDocumentValue({ s: 'x'.repeat(100) }, { maxBytes: 100 })).toMatchObject({ rule: 'max-size', pointer: '' });
  });
});

describe('member names such as __proto__ are data', () => {
  const parsed = JSON.parse('{"__proto__":{"x":1},"constructor":{"prototype":{"y":2}},"ok":true}') as Record<string, unknown>;

  test('a command keeps them (the stream schema does not rebuild the object)', () => {
    const cmd = CommandSchema.parse({ v: 1, requestId: 'r', kind: 'put', tenant: 't', principal: 'p', collection: 'c', id: 'i', data: parsed, receivedAt: 'now' });
    expect(JSON.stringify(cmd.data)).toBe('{"__proto__":{"x":1},"constructor":{"prototype":{"y":2}},"ok":true}');
  });

  test('a merge patch sets, merges and deletes them as members, never as prototypes', () => {
    const patch = JSON.parse('{"__proto__":{"z":3},"constructor":{"prototype":null},"prototype":{"p":1},"toString":"s"}') as Record<string, unknown>;
    const out = applyMergePatch(parsed, patch);
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect(JSON.stringify(out)).toBe('{"__proto__":{"x":1,"z":3},"constructor":{},"ok":true,"prototype":{"p":1},"toString":"s"}');
    // `constructor` absent from the target is not Object (inherited) but a new member.
    expect(JSON.stringify(applyMergePatch({}, JSON.parse('{"constructor":{"a":1}}')))).toBe('{"constructor":{"a":1}}');
    expect(JSON.stringify(applyMergePatch(parsed, JSON.parse('{"__proto__":null}')))).toBe('{"constructor":{"prototype":{"y":2}},"ok":true}');
    expect(({} as Record<string, unknown>).z).toBeUndefined();
  });
});

describe('decide: a document the contract refuses is rejected with invalid_document (not retried, not parked)', () => {
  const base = { v: 1 as const, requestId: 'r', tenant: 't', principal: 'p', collection: 'c', id: 'i', receivedAt: 'now' };
  test('a put straight on the stream with a NUL or a lone surrogate', () => {
    expect(decide({ ...base, kind: 'put', data: { s: 'a\u0000b' } }, undefined)).toMatchObject({ kind: 'reject', reason: { code: 'invalid_document' } });
    expect(decide({ ...base, kind: 'put', data: { s: '\ud800' } }, undefined)).toMatchObject({ kind: 'reject', reason: { code: 'invalid_document', message: expect.stringContaining('/s') } });
  });
  test('a merge patch that would grow the document past MAX_KEYS', () => {
    const half = (p: string) => Object.fromEntries(Array.from({ length: MAX_KEYS / 2 + 1 }, (_, i) => [`${p}${i}`, i]));
    const state = { tenant: 't', collection: 'c', id: 'i', version: 1, deleted: false, data: half('a'), updatedAt: 'now' };
    expect(decide({ ...base, kind: 'patch', data: half('b') }, state)).toMatchObject({ kind: 'reject', reason: { code: 'invalid_document', message: expect.stringContaining('max-keys') } });
    expect(decide({ ...base, kind: 'patch', data: { b: 1 } }, state)).toMatchObject({ kind: 'accept', version: 2 });
  });
});

describe('failure classes (processors/failures.ts) of real PostgreSQL errors', () => {
  let pg: Client;
  beforeAll(async () => {
    pg = new Client({ connectionString: BASE_DATABASE_URL });
    await pg.connect();
  });
  afterAll(async () => {
    await pg?.end();
  });
  const errorOf = async (sql: string, params: unknown[] = []) => {
    try {
      await pg.query(sql, params);
    } catch (err) {
      return err;
    }
    throw new Error(`${sql} did not fail`);
  };

  test.each([
    ['a lone surrogate in jsonb', `SELECT $1::jsonb`, ['{"s":"\\ud800"}'], '22P02'],
    ['\\u0000 in jsonb', `SELECT $1::jsonb`, ['{"s":"\\u0000"}'], '22P05'],
    ['a NUL byte in text', `SELECT $1::text`, ['a\u0000b'], '22021'],
    ['a number out of range', `SELECT $1::int`, ['99999999999'], '22003'],
  ])('%s is deterministic-data (rejected with invalid_document)', async (_what, sql, params, code) => {
    const err = await errorOf(sql, params);
    expect(err).toMatchObject({ code });
    expect(classifyFailure(err)).toBe('deterministic-data');
    expect(deterministicRejection(err)).toMatchObject({ code: 'invalid_document', message: expect.stringContaining(`SQLSTATE ${code}`) });
  });

  test('missing tables and constraint violations are operator-fixable; races and unknown errors transient', async () => {
    expect(classifyFailure(await errorOf('SELECT * FROM no_such_table_here'))).toBe('operator-fixable');
    expect(classifyFailure(await errorOf(`SELECT * FROM (VALUES (1)) v(x) WHERE x = 'a'`))).toBe('deterministic-data');
    expect(classifyFailure(await errorOf('DO $$ BEGIN RAISE EXCEPTION \'trigger says no\'; END $$'))).toBe('operator-fixable');
    expect(classifyFailure(await errorOf('CREATE TEMP TABLE u (x int UNIQUE); INSERT INTO u VALUES (1), (1)'))).toBe('transient');
    expect(classifyFailure(await errorOf('CREATE TEMP TABLE c (x int CHECK (x > 0)); INSERT INTO c VALUES (0)'))).toBe('operator-fixable');
    expect(classifyFailure(new TypeError('x is undefined'))).toBe('operator-fixable');
    expect(classifyFailure(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).toBe('transient');
    expect(deterministicRejection(await errorOf('SELECT * FROM no_such_table_here'))).toBeUndefined();
  });
});
