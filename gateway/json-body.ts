/**
 * Request bodies under the document contract (core/document.ts): strict UTF-8, then one
 * iterative scan for syntax and rules (so no depth of nesting can overflow a stack), then
 * JSON.parse. A syntax error names its position (offset, line, column); a rule names the JSON
 * Pointer of the offending place.
 */
import { checkJsonText, decodeUtf8, lineColumn } from '../core/document';
import { BadRequestError, InvalidDocumentError } from '../core/errors';

/** The body's text, refusing bytes that are not well-formed UTF-8 (never a silent U+FFFD). */
export function bodyText(bytes: Uint8Array): string {
  const text = decodeUtf8(bytes);
  if (typeof text !== 'string') throw new InvalidDocumentError(`The request body ${text.message.replace(/^The text /, '')}`, text);
  return text;
}

export function parseJsonBody(text: string): unknown {
  const violation = checkJsonText(text);
  if (violation?.rule === 'syntax') {
    const at = violation.position ?? 0;
    const { line, column } = lineColumn(text, at);
    const found = at >= text.length ? 'the end of the body' : `${JSON.stringify(text[at])}`;
    throw new BadRequestError(
      `The request body is not valid JSON: unexpected ${found} at position ${at} (line ${line}, column ${column}).`,
      { position: at, line, column, rule: 'syntax' },
    );
  }
  if (violation) throw new InvalidDocumentError(`The request body breaks the document contract. ${violation.message}`, violation);
  return JSON.parse(text);
}
