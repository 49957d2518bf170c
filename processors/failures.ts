/**
 * The one place that says what a failed command means (docs/RELIABILITY.md, "Which failures are
 * which"). Every statement the store runs is fixed; only a command's values vary. So:
 *
 * - `deterministic-data`: PostgreSQL refuses the command's own content and will refuse it on every
 *   attempt. SQLSTATE class 22 (data exception: 22P02 invalid text representation, e.g. a lone
 *   surrogate in jsonb; 22P05 untranslatable character, e.g. \u0000 in jsonb; 22021 character not
 *   in repertoire, e.g. a NUL byte in text; 22003 numeric value out of range; ...) and class 54
 *   (program limit exceeded: 54000, 54001 statement too complex / stack depth). The command is
 *   REJECTED with `invalid_document` at once: a final ack, and its item is not blocked.
 * - `operator-fixable`: the command could succeed once someone changes something: a constraint
 *   or trigger deployed by mistake (class 23 except 23505, P0), a missing table, column or
 *   permission (class 42, 2B), or a bug of ours tripped by the content (TypeError, RangeError).
 *   Counted per attempt; after MAX_ATTEMPTS it is PARKED (processors/parking.ts), its item's later
 *   writes held behind it, until `npm run dlq -- redrive` (after the fix) or `discard`.
 * - `transient`: anything else — connection lost, 08xxx, 40001 serialization, 40P01 deadlock, 23505
 *   (a concurrent writer), 53xxx resources, 57xxx shutdown or timeout, unknown errors. Retried,
 *   never counted, so an outage never parks or rejects a healthy record.
 */
import { DatabaseError } from 'pg';
import { clip } from '../core/document';

export type FailureClass = 'deterministic-data' | 'transient' | 'operator-fixable';

const DETERMINISTIC_DATA_CLASSES = new Set(['22', '54']);
const OPERATOR_FIXABLE_CLASSES = new Set(['23', '42', '2B', 'P0']);
const RACE_CODES = new Set(['23505']); // unique violation: a concurrent writer, fixed by a retry

export function classifyFailure(err: unknown): FailureClass {
  if (err instanceof DatabaseError && typeof err.code === 'string') {
    const cls = err.code.slice(0, 2);
    if (DETERMINISTIC_DATA_CLASSES.has(cls)) return 'deterministic-data';
    if (OPERATOR_FIXABLE_CLASSES.has(cls) && !RACE_CODES.has(err.code)) return 'operator-fixable';
    return 'transient';
  }
  if (err instanceof TypeError || err instanceof RangeError) return 'operator-fixable';
  return 'transient';
}

/** The rejection for a command the database refuses for its content; undefined for any other failure. */
export function deterministicRejection(err: unknown): { code: 'invalid_document'; message: string } | undefined {
  if (classifyFailure(err) !== 'deterministic-data') return undefined;
  const e = err as DatabaseError;
  // PostgreSQL may quote the content in its message: keep the reason itself storable and short.
  const said = clip(`${e.message}${e.detail ? `; ${e.detail}` : ''}`, 300).replace(/[\u0000-\u001f]/g, ' ').replace(LONE_SURROGATE_G, '\ufffd');
  return { code: 'invalid_document', message: `The database refuses this write's content (SQLSTATE ${e.code}: ${said}); it can never succeed.` };
}

const LONE_SURROGATE_G = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
