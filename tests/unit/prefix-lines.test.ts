import { PassThrough } from 'node:stream';
import { prefixLines } from '../../scripts/prefix-lines';

function pipeThrough(chunks: Buffer[]): Promise<{ text: string; writes: number }> {
  const input = new PassThrough();
  let text = '';
  let writes = 0;
  prefixLines(input, '[gateway]  ', { write: (s: string) => { text += s; writes++; } });
  return new Promise((resolve) => {
    input.on('end', () => setImmediate(() => resolve({ text, writes })));
    for (const c of chunks) input.write(c);
    input.end();
  });
}

test('prefixes every line of a chunk and writes the chunk at once', async () => {
  const out = await pipeThrough([Buffer.from('{"a":1}\n{"b":2}\n{"c":3}\n')]);
  expect(out.text).toBe('[gateway]  {"a":1}\n[gateway]  {"b":2}\n[gateway]  {"c":3}\n');
  expect(out.writes).toBe(1);
});

test('holds a line split across chunks until its end, a multi-byte character split too', async () => {
  const line = Buffer.from('{"msg":"café"}\n');
  const cut = line.indexOf(0xc3) + 1; // inside the two bytes of "é"
  const out = await pipeThrough([Buffer.from('first\nsec'), Buffer.from('ond\n'), line.subarray(0, cut), line.subarray(cut)]);
  expect(out.text).toBe('[gateway]  first\n[gateway]  second\n[gateway]  {"msg":"café"}\n');
});

test('writes a last line without a newline when the output ends', async () => {
  const out = await pipeThrough([Buffer.from('done\nno newline')]);
  expect(out.text).toBe('[gateway]  done\n[gateway]  no newline\n');
});
