/**
 * Log lines written once per event-loop turn instead of one write(2) each: under load one turn
 * answers tens of requests, each with its own log line. Lines keep their order; whatever is still
 * buffered is written when the process exits.
 */
export function turnBufferedWriter(out: { write(chunk: string): unknown } = process.stdout): (line: string) => void {
  let buffer = '';
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (!buffer) return;
    const chunk = buffer;
    buffer = '';
    out.write(chunk);
  };
  process.on('exit', flush);
  return (line) => {
    buffer += line;
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  };
}

let stdoutWriter: ((line: string) => void) | undefined;
/** One buffered writer for the process' stdout (one exit hook, however many gateways a process starts). */
export const bufferedStdout = (): ((line: string) => void) => (stdoutWriter ??= turnBufferedWriter(process.stdout));
