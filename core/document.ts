/**
 * The document contract: what an item's data (and any other user JSON: merge patches, WebSocket
 * frames, listing cursors) may be. Base: I-JSON (RFC 7493). What Ackstream stores it stores exactly
 * (a GET returns the document key for key, value for value); what it could not store exactly is
 * refused, naming the JSON Pointer (RFC 6901) of the first offending place and the rule:
 *
 * - `utf-8`           the bytes are well-formed UTF-8 (no silent U+FFFD replacement)
 * - `syntax`          the text is JSON (RFC 8259)
 * - `lone-surrogate`  no string or member name holds an unpaired UTF-16 surrogate (`"\ud800"`):
 *                     not Unicode text, and PostgreSQL jsonb refuses it
 * - `nul-character`   no string or name holds U+0000: jsonb cannot hold it
 * - `duplicate-key`   no object has two members of the same name (parsers disagree on which wins)
 * - `number-range`    a number is finite and does not underflow: `1e400`, `-1e400`, `1e-400` are refused
 * - `number-precision` a number is written with no more precision than an IEEE 754 double keeps:
 *                     its decimal value equals the double's shortest round-trip form, so
 *                     `12345678901234567890` or `0.1000000000000000000001` are refused rather than rounded.
 *                     `-0` is the number zero and reads back as `0` (jsonb and DynamoDB have no negative zero).
 * - `max-depth`       at most MAX_DEPTH nested objects/arrays (the document itself is depth 1)
 * - `max-keys`        at most MAX_KEYS object members in the whole document
 * - `max-size`        a stored document (after a merge patch) serialises to at most MAX_DOCUMENT_BYTES
 * - `not-json`        (values, not text) only null, booleans, numbers, strings, arrays and plain objects
 *
 * Member names such as `__proto__`, `constructor` and `prototype` are ordinary data: they are
 * stored and returned faithfully. No code on the data path assigns user keys with `obj[key] = v`
 * (which for `__proto__` would set a prototype instead of a member): JSON.parse defines own
 * properties, the merge patch uses `setMember`, everything else passes documents as JSON text.
 *
 * The text check is iterative (an explicit stack), so a body nested 250,000 deep is a 400, never
 * a stack overflow; it also finds syntax errors, so the recursive parts of a runtime never see
 * text that is not already known to be JSON within the limits.
 */

export const MAX_DEPTH = 100;
export const MAX_KEYS = 10_000;
/** A stored document's JSON (UTF-8): under DynamoDB's 400 KB item limit with its envelope. */
export const MAX_DOCUMENT_BYTES = 256 * 1024;

export type DocumentRule =
  | 'utf-8'
  | 'syntax'
  | 'lone-surrogate'
  | 'nul-character'
  | 'duplicate-key'
  | 'number-range'
  | 'number-precision'
  | 'max-depth'
  | 'max-keys'
  | 'max-size'
  | 'not-json';

export interface DocumentLimits {
  maxDepth: number;
  maxKeys: number;
  maxBytes: number;
}

export const DOCUMENT_LIMITS: DocumentLimits = { maxDepth: MAX_DEPTH, maxKeys: MAX_KEYS, maxBytes: MAX_DOCUMENT_BYTES };

export interface DocumentViolation {
  rule: DocumentRule;
  /** JSON Pointer (RFC 6901) of the offending value or member; '' is the whole document. */
  pointer: string;
  message: string;
  /** For `syntax`: the offset (UTF-16 code units) where the text stops being JSON. */
  position?: number;
}

const escapeToken = (t: string) => t.replace(/~/g, '~0').replace(/\//g, '~1');
export function toPointer(path: ReadonlyArray<string | number>): string {
  return path.map((p) => `/${escapeToken(String(p))}`).join('');
}

/** `obj[key] = value` without the `__proto__` setter: always an own, enumerable data member. */
export function setMember(obj: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  else obj[key] = value;
}

/** An own member only (never one inherited from Object.prototype, like `constructor`). */
export function getMember(obj: Record<string, unknown>, key: string): unknown {
  return Object.prototype.hasOwnProperty.call(obj, key) ? obj[key] : undefined;
}

// ---------------------------------------------------------------------------------------------
// Strings and numbers

const isHigh = (u: number) => u >= 0xd800 && u <= 0xdbff;
const isLow = (u: number) => u >= 0xdc00 && u <= 0xdfff;

/** The string rules for an already decoded string: undefined, or the rule it breaks. */
export function stringRule(s: string): 'lone-surrogate' | 'nul-character' | undefined {
  if (s.includes('\u0000')) return 'nul-character';
  if (LONE_SURROGATE.test(s)) return 'lone-surrogate';
  return undefined;
}
// (String.prototype.isWellFormed is ES2024: the client SDK also runs in older browsers.)
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Sign, significant digits and exponent of a decimal literal, with zeros trimmed: equal iff the values are equal. */
function canonicalDecimal(lit: string): string {
  let s = lit;
  const neg = s.startsWith('-');
  if (neg) s = s.slice(1);
  const e = s.search(/[eE]/);
  let exp = 0;
  if (e >= 0) {
    exp = Number(s.slice(e + 1));
    s = s.slice(0, e);
  }
  const dot = s.indexOf('.');
  let digits = s;
  if (dot >= 0) {
    exp -= s.length - dot - 1;
    digits = s.slice(0, dot) + s.slice(dot + 1);
  }
  digits = digits.replace(/^0+/, '');
  if (digits === '') return '0';
  const trimmed = digits.replace(/0+$/, '');
  exp += digits.length - trimmed.length;
  return `${neg ? '-' : ''}${trimmed}e${exp}`;
}

/** The number rules for a JSON number literal. */
export function numberRule(lit: string): { rule: 'number-range' | 'number-precision'; message: string } | undefined {
  const n = Number(lit);
  const want = canonicalDecimal(lit);
  if (!Number.isFinite(n) || (n === 0 && want !== '0')) {
    return { rule: 'number-range', message: `the number ${clip(lit)} is outside what a double holds (about ±1.8e308, smallest 5e-324)` };
  }
  if (canonicalDecimal(String(n)) !== want) {
    return { rule: 'number-precision', message: `the number ${clip(lit)} has more precision than a double keeps; it would be stored as ${String(n)}` };
  }
  return undefined;
}

export const clip = (s: string, max = 40) => (s.length > max ? `${s.slice(0, max)}…` : s);
const STRING_MESSAGES = {
  'lone-surrogate': 'contains an unpaired UTF-16 surrogate (not Unicode text)',
  'nul-character': 'contains U+0000, which the database cannot store',
} as const;

// ---------------------------------------------------------------------------------------------
// The text check

interface Frame {
  array: boolean;
  /** Array: index of the current element; object: name of the current member. */
  at: number | string;
  names: Set<string> | undefined;
}

/**
 * Checks JSON text against the document rules (and its syntax) without recursion. Returns the
 * first violation in document order, or undefined; a syntax error anywhere wins over a rule
 * (the text is not JSON at all).
 */
export function checkJsonText(text: string, limits: Partial<DocumentLimits> = {}): DocumentViolation | undefined {
  const maxDepth = limits.maxDepth ?? MAX_DEPTH;
  const maxKeys = limits.maxKeys ?? MAX_KEYS;
  const n = text.length;
  const stack: Frame[] = [];
  let i = 0;
  let keys = 0;
  let first: DocumentViolation | undefined;
  const path = () => toPointer(stack.map((f) => f.at));
  // Only the first violation is kept (pointers are built once); the scan goes on for syntax errors.
  const found = (rule: DocumentRule, pointer: () => string, message: string) => {
    if (first) return;
    const at = pointer();
    first = { rule, pointer: at, message: `${at === '' ? 'The document' : `At ${clip(at, 200)}`}: ${message} (rule ${rule}).` };
  };
  const syntax = (at: number): DocumentViolation => {
    const { line, column } = lineColumn(text, at);
    const what = at >= n ? 'the end of the text' : JSON.stringify(text[at]);
    return { rule: 'syntax', pointer: '', position: at, message: `The text is not valid JSON: unexpected ${what} at position ${at} (line ${line}, column ${column}).` };
  };
  const ws = () => {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
      else break;
    }
  };
  /** Reads a string at i (on its quote): its value (decoded when `want`) and the string rule it breaks, or null on a syntax error. */
  const readString = (want: boolean): { value: string | undefined; bad: 'lone-surrogate' | 'nul-character' | undefined } | null => {
    const start = i;
    i++;
    let escaped = false;
    let pendingHigh = false;
    let bad: 'lone-surrogate' | 'nul-character' | undefined;
    for (;;) {
      if (i >= n) return null;
      let u = text.charCodeAt(i);
      if (u === 0x22) {
        i++;
        break;
      }
      if (u < 0x20) return null;
      if (u === 0x5c) {
        escaped = true;
        const e = text.charCodeAt(i + 1);
        if (e === 0x75 /* u */) {
          const hex = text.slice(i + 2, i + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) {
            i = Math.min(n, i + 2);
            return null;
          }
          u = parseInt(hex, 16);
          i += 6;
        } else if (e === 0x22 || e === 0x5c || e === 0x2f || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) {
          u = 0x41; // an ordinary character as far as the rules go
          i += 2;
        } else {
          i++;
          return null;
        }
      } else i++;
      if (pendingHigh) {
        pendingHigh = false;
        if (isLow(u)) continue;
        bad ??= 'lone-surrogate';
      }
      if (isHigh(u)) pendingHigh = true;
      else if (isLow(u)) bad ??= 'lone-surrogate';
      else if (u === 0) bad ??= 'nul-character';
    }
    if (pendingHigh) bad ??= 'lone-surrogate';
    if (!want) return { value: undefined, bad };
    return { value: escaped ? (JSON.parse(text.slice(start, i)) as string) : text.slice(start + 1, i - 1), bad };
  };
  const readNumber = (): boolean => {
    const start = i;
    if (text[i] === '-') i++;
    if (text[i] === '0') i++;
    else if (!digits()) return false;
    if (text[i] === '.') {
      i++;
      if (!digits()) return false;
    }
    if (text[i] === 'e' || text[i] === 'E') {
      i++;
      if (text[i] === '+' || text[i] === '-') i++;
      if (!digits()) return false;
    }
    const bad = numberRule(text.slice(start, i));
    if (bad) found(bad.rule, path, bad.message);
    return true;
  };
  const digits = () => {
    const s = i;
    while (i < n && text.charCodeAt(i) >= 0x30 && text.charCodeAt(i) <= 0x39) i++;
    return i > s;
  };
  const literal = (word: string) => {
    if (text.startsWith(word, i)) {
      i += word.length;
      return true;
    }
    return false;
  };

  // The state machine: VALUE expects a value, AFTER follows one, NAME expects a member name.
  let state: 'value' | 'after' | 'name' = 'value';
  for (;;) {
    if (state === 'value') {
      ws();
      const c = text[i];
      if (c === '{' || c === '[') {
        const array = c === '[';
        if (stack.length + 1 > maxDepth) found('max-depth', path, `nesting deeper than ${maxDepth} levels`);
        stack.push({ array, at: array ? 0 : '', names: undefined });
        i++;
        ws();
        if (text[i] === (array ? ']' : '}')) {
          i++;
          stack.pop();
          state = 'after';
        } else state = array ? 'value' : 'name';
        continue;
      }
      if (c === '"') {
        const str = readString(false);
        if (str === null) return syntax(i);
        if (str.bad) found(str.bad, path, `the string ${STRING_MESSAGES[str.bad]}`);
      } else if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) {
        if (!readNumber()) return syntax(i);
      } else if (!(literal('true') || literal('false') || literal('null'))) return syntax(i);
      state = 'after';
      continue;
    }
    if (state === 'name') {
      ws();
      if (text[i] !== '"') return syntax(i);
      const top = stack[stack.length - 1]!;
      const str = readString(true);
      if (str === null) return syntax(i);
      const name = str.value!;
      top.at = name; // pointers below name this member
      if (str.bad) found(str.bad, path, `the member name ${STRING_MESSAGES[str.bad]}`);
      top.names ??= new Set();
      if (top.names.has(name)) found('duplicate-key', path, `the member name ${clip(JSON.stringify(name))} appears more than once in this object`);
      top.names.add(name);
      if (++keys > maxKeys) found('max-keys', path, `more than ${maxKeys} object members in the document`);
      ws();
      if (text[i] !== ':') return syntax(i);
      i++;
      state = 'value';
      continue;
    }
    // after a value
    ws();
    const top = stack[stack.length - 1];
    if (!top) {
      if (i < n) return syntax(i);
      return first;
    }
    const c = text[i];
    if (c === ',') {
      i++;
      if (top.array) {
        top.at = (top.at as number) + 1;
        state = 'value';
      } else state = 'name';
    } else if (c === (top.array ? ']' : '}')) {
      i++;
      stack.pop();
    } else return syntax(i);
  }
}

export function lineColumn(text: string, at: number): { line: number; column: number } {
  let line = 1;
  let start = 0;
  for (let i = 0; i < at && i < text.length; i++) {
    if (text.charCodeAt(i) === 0x0a) {
      line++;
      start = i + 1;
    }
  }
  return { line, column: at - start + 1 };
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Bytes → text, refusing malformed UTF-8 instead of replacing it with U+FFFD. */
export function decodeUtf8(bytes: Uint8Array): string | DocumentViolation {
  try {
    return utf8.decode(bytes);
  } catch {
    let at = 0;
    // Find the first bad byte for the message: the longest prefix that decodes.
    let lo = 0;
    let hi = bytes.length;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      try {
        new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, mid), { stream: true });
        lo = mid;
      } catch {
        hi = mid - 1;
      }
    }
    at = lo;
    return { rule: 'utf-8', pointer: '', position: at, message: `The text is not well-formed UTF-8: bad byte sequence at byte ${at} (rule utf-8).` };
  }
}

/** JSON text → value, or the first violation of the rules (syntax included). */
export function parseDocumentText(text: string, limits: Partial<DocumentLimits> = {}): { value: unknown } | { violation: DocumentViolation } {
  const violation = checkJsonText(text, limits);
  if (violation) return { violation };
  return { value: JSON.parse(text) as unknown };
}

// ---------------------------------------------------------------------------------------------
// The value check (documents already parsed: the processors' own defence, the client SDK)

/**
 * Checks a parsed value against the rules that survive parsing (strings, numbers' range, depth,
 * member count, size, JSON types). Duplicate names and excess precision are gone after
 * JSON.parse; the gateway refuses those on the text. Iterative, like the text check.
 */
export function checkDocumentValue(value: unknown, limits: Partial<DocumentLimits> = {}): DocumentViolation | undefined {
  const maxDepth = limits.maxDepth ?? MAX_DEPTH;
  const maxKeys = limits.maxKeys ?? MAX_KEYS;
  let keys = 0;
  const out = (rule: DocumentRule, path: Array<string | number>, message: string): DocumentViolation => {
    const pointer = toPointer(path);
    return { rule, pointer, message: `${pointer === '' ? 'The document' : `At ${clip(pointer, 200)}`}: ${message} (rule ${rule}).` };
  };
  const work: Array<{ v: unknown; path: Array<string | number> }> = [{ v: value, path: [] }];
  while (work.length) {
    const { v, path } = work.pop()!;
    if (v === null || typeof v === 'boolean') continue;
    if (typeof v === 'string') {
      const bad = stringRule(v);
      if (bad) return out(bad, path, `the string ${STRING_MESSAGES[bad]}`);
      continue;
    }
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) return out('number-range', path, `${v} is not a JSON number`);
      continue;
    }
    if (typeof v !== 'object') return out('not-json', path, `a ${typeof v} is not a JSON value`);
    if (path.length + 1 > maxDepth) return out('max-depth', path, `nesting deeper than ${maxDepth} levels`);
    if (Array.isArray(v)) {
      for (let k = v.length - 1; k >= 0; k--) work.push({ v: v[k], path: [...path, k] });
      continue;
    }
    const proto = Object.getPrototypeOf(v) as unknown;
    if (proto !== Object.prototype && proto !== null) {
      return out('not-json', path, `a ${(v as object).constructor?.name ?? 'non-plain object'} is not a JSON object; convert it first`);
    }
    const entries = Object.entries(v as Record<string, unknown>);
    keys += entries.length;
    for (let k = entries.length - 1; k >= 0; k--) {
      const [name, child] = entries[k]!;
      const bad = stringRule(name);
      if (bad) return out(bad, [...path, name], `the member name ${STRING_MESSAGES[bad]}`);
      if (child === undefined) return out('not-json', [...path, name], 'undefined is not a JSON value (it would be dropped)');
      work.push({ v: child, path: [...path, name] });
    }
    if (keys > maxKeys) return out('max-keys', path, `more than ${maxKeys} object members in the document`);
  }
  if (limits.maxBytes !== undefined) {
    const bytes = new TextEncoder().encode(JSON.stringify(value)).length;
    if (bytes > limits.maxBytes) return out('max-size', [], `${bytes} bytes of JSON, over the ${limits.maxBytes}-byte limit for a stored document`);
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Query strings (the read API's parameters, the ack service's upgrade URL)

/**
 * A query string under the same rules: strict percent-decoding to well-formed UTF-8 (no silent
 * U+FFFD), no U+0000, no parameter given twice (which one would win is a guess). The violation's
 * pointer is `/<parameter name>`.
 */
export function parseQuery(query: string): Map<string, string> | DocumentViolation {
  const out = new Map<string, string>();
  if (query === '') return out;
  for (const part of query.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const rawName = eq === -1 ? part : part.slice(0, eq);
    const rawValue = eq === -1 ? '' : part.slice(eq + 1);
    let name: string;
    let value: string;
    try {
      name = decodeURIComponent(rawName.replace(/\+/g, ' '));
      value = decodeURIComponent(rawValue.replace(/\+/g, ' '));
    } catch {
      const shown = clip(rawName);
      return { rule: 'utf-8', pointer: `/${escapeToken(shown)}`, message: `Query parameter "${shown}" is not well-formed percent-encoded UTF-8 (rule utf-8).` };
    }
    const bad = stringRule(name) ?? stringRule(value);
    if (bad) return { rule: bad, pointer: toPointer([name]), message: `Query parameter ${clip(JSON.stringify(name))} ${STRING_MESSAGES[bad]} (rule ${bad}).` };
    if (out.has(name)) {
      return { rule: 'duplicate-key', pointer: toPointer([name]), message: `Query parameter ${clip(JSON.stringify(name))} is given more than once (rule duplicate-key).` };
    }
    out.set(name, value);
  }
  return out;
}
