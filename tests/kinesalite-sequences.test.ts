/**
 * kinesalite's sequence-number arithmetic on BigInt (scripts/kinesalite-sequences.ts) answers
 * exactly what kinesalite's own bignumber.js code answers: every version of sequence number,
 * random and edge values, increments, and partition-key hashes compared with shard ranges. The
 * emulator's API behaviour with the patch is what every other test that runs kinesalite checks.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { fastSequences, patchKinesaliteSequences } from '../scripts/kinesalite-sequences';

const db = patchKinesaliteSequences();
const original = db.ackstreamOriginals!;
const fast = fastSequences(db);

const outcome = (fn: () => unknown) => {
  try {
    return { value: fn() };
  } catch (err) {
    return { error: (err as Error).message };
  }
};
const randomDecimal = (bits: number) => (BigInt(`0x${randomBytes(Math.ceil(bits / 8)).toString('hex')}`) & ((1n << BigInt(bits)) - 1n)).toString();

/** A v2 sequence as kinesalite writes them: what PutRecords, CreateStream and GetShardIterator make. */
function randomV2() {
  return {
    shardCreateTime: randomInt(0, 16_000_000_000) * 1000, // kinesalite refuses dates from 16,025,175,000 s on
    shardIx: randomInt(0, 2 ** 31 - 1),
    seqIx: randomDecimal(63),
    seqTime: randomInt(0, 2 ** 34) * 1000,
    ...(randomInt(2) ? { byte1: randomBytes(1).toString('hex') } : {}),
  };
}

describe('kinesalite sequence numbers on BigInt', () => {
  it('prints and parses version-2 sequence numbers as kinesalite does', () => {
    for (let i = 0; i < 5000; i++) {
      const obj = randomV2();
      const seq = original.stringifySequence(obj);
      expect(fast.stringifySequence(obj)).toBe(seq);
      expect(outcome(() => fast.parseSequence(seq))).toEqual(outcome(() => original.parseSequence(seq)));
      expect(outcome(() => fast.incrementSequence(seq))).toEqual(outcome(() => original.incrementSequence(seq)));
      const parsed = original.parseSequence(seq) as never;
      expect(fast.incrementSequence(parsed, 1234567000)).toBe(original.incrementSequence(parsed, 1234567000));
    }
  });

  it('answers the numeric fields kinesalite passes (seqIx as a number, none at all) the same way', () => {
    for (let i = 0; i < 2000; i++) {
      const { shardCreateTime, shardIx, seqTime } = randomV2();
      const seqIx = randomInt(0, 2 ** 47);
      for (const obj of [{ shardCreateTime, shardIx, seqIx, seqTime }, { shardCreateTime, shardIx }, { shardCreateTime, shardIx: 0, seqIx: '0' }]) {
        expect(fast.stringifySequence(obj)).toBe(original.stringifySequence(obj));
      }
    }
  });

  it('leaves versions 0 and 1, odd and invalid values to kinesalite, with its answers and errors', () => {
    const values = [
      '0', '1', '49590338271490256608559692538361571095921575989136588898', // a v2 from AWS' documentation
      (2n ** 124n - 1n).toString(), (2n ** 124n).toString(), (2n ** 129n - 1n).toString(), (2n ** 129n).toString(),
      (2n ** 185n).toString(), (2n ** 185n + 1n).toString(), (3n * 2n ** 184n - 1n).toString(), (3n * 2n ** 184n).toString(),
      '', 'abc', '1.5', '-1', '0001', randomDecimal(200), randomDecimal(186),
    ];
    for (let i = 0; i < 500; i++) values.push(randomDecimal(randomInt(1, 200)));
    for (const v of values) expect(outcome(() => fast.parseSequence(v))).toEqual(outcome(() => original.parseSequence(v)));
    for (const version of [0, 1]) {
      const obj = { ...randomV2(), version, seqRand: randomBytes(7).toString('hex'), seqIx: randomInt(0, 255) };
      expect(fast.stringifySequence(obj)).toBe(original.stringifySequence(obj));
    }
    const negative = { shardCreateTime: 1000, shardIx: -5 };
    expect(outcome(() => fast.stringifySequence(negative))).toEqual(outcome(() => original.stringifySequence(negative)));
  });

  it('places a partition key in the same shard range', () => {
    const bounds = ['0', '1', (2n ** 127n).toString(), (2n ** 127n - 1n).toString(), (2n ** 128n - 1n).toString(), randomDecimal(128)];
    for (let i = 0; i < 2000; i++) {
      const key = i % 3 === 0 ? randomBytes(randomInt(1, 64)).toString('base64') : `tenant/items/${i}/é✓`;
      const a = fast.partitionKeyToHashKey(key);
      const b = original.partitionKeyToHashKey(key);
      for (const bound of bounds) expect(a.comparedTo(bound)).toBe(b.comparedTo(bound));
      expect(a.comparedTo((b as unknown as { toFixed(): string }).toFixed())).toBe(0);
    }
  });

  it('is what kinesalite calls once the local stack has loaded it', () => {
    expect(db.parseSequence).not.toBe(original.parseSequence);
    expect(patchKinesaliteSequences()).toBe(db);
  });
});
