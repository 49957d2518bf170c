/** How `npm start` (scripts/start.ts) shows each service's output: its lines, each prefixed with the service's name. */
import { StringDecoder } from 'node:string_decoder';

/**
 * Copies a service's output to ours with `prefix` before each line, one write per chunk read (a
 * service writes its log lines once per event-loop turn): per line (readline, a write each) it
 * cost the orchestrator a syscall and an event per request log line under load. A line split
 * across chunks is held until its end arrives; a last line without a newline is written at the end.
 */
export function prefixLines(input: NodeJS.ReadableStream, prefix: string, out: { write(s: string): unknown }): void {
  const decoder = new StringDecoder('utf8');
  let partial = '';
  input.on('data', (chunk: Buffer) => {
    const text = partial + decoder.write(chunk);
    const last = text.lastIndexOf('\n');
    if (last === -1) {
      partial = text;
      return;
    }
    partial = text.slice(last + 1);
    out.write(`${prefix}${text.slice(0, last).replaceAll('\n', `\n${prefix}`)}\n`);
  });
  input.on('end', () => {
    const rest = partial + decoder.end();
    partial = '';
    if (rest) out.write(`${prefix}${rest}\n`);
  });
}
