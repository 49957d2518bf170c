/**
 * kinesalite's sequence-number arithmetic on native BigInt instead of bignumber.js.
 *
 * kinesalite (the local stack's Kinesis emulator) parses and prints every sequence number, and
 * hashes every partition key, through bignumber.js: per record a PutRecords call parses the key's
 * MD5 and each shard's hash key range, parses the shard's first sequence number and prints the
 * new one; a GetRecords call parses the sequence number of every record it reads. In a profile
 * of `npm start` at 400 writes/s that base conversion was the largest single item of the
 * orchestrator's CPU (≈ 17 % of it: docs/PERFORMANCE.md). This replaces the four functions of
 * kinesalite's `db` module that the actions call (`db.parseSequence(…)` etc., looked up at each
 * call) with the same arithmetic on BigInt. Same inputs, same outputs: `tests/kinesalite-sequences.test.ts`
 * compares them with the originals over every version of sequence number kinesalite knows and
 * edge values, and kinesalite's own API behaviour is covered by the tests that run it. Anything
 * but a plain decimal string goes to the original function, so its errors are kinesalite's own.
 * Patched once per loaded kinesalite.
 */
import { createHash } from 'node:crypto';

interface SequenceObject {
  shardCreateTime: number;
  shardIx: number;
  seqIx?: string | number;
  seqTime?: number;
  byte1?: string;
  seqRand?: string;
  version?: number | null;
}

/** What kinesalite's putRecord(s) do with a partition key's hash: compare it with a shard's range bounds (decimal strings). */
export class HashKey {
  constructor(readonly value: bigint) {}
  comparedTo(other: string | number): number {
    const o = BigInt(other);
    return this.value < o ? -1 : this.value > o ? 1 : 0;
  }
}

type SequenceFunctions = Pick<KinesaliteDb, 'parseSequence' | 'stringifySequence' | 'incrementSequence' | 'partitionKeyToHashKey'>;

export interface KinesaliteDb {
  parseSequence(seq: string): Record<string, unknown>;
  stringifySequence(obj: SequenceObject): string;
  incrementSequence(seqObj: string | SequenceObject, seqTime?: number | null): string;
  partitionKeyToHashKey(partitionKey: string): { comparedTo(other: string | number): number };
  shardIxToHex(shardIx: number): string;
  ackstreamOriginals?: SequenceFunctions;
}

const POW_2_124 = 2n ** 124n;
const POW_2_129 = 2n ** 129n; // kinesalite's POW_2_124_NEXT: 2^125 × 16
const POW_2_185 = 2n ** 185n;
const POW_2_185_NEXT = 3n * 2n ** 184n; // 2^185 × 1.5
const DECIMAL = /^\d+$/;

const hexOf = (decimal: string | number) => BigInt(decimal).toString(16);
const pad = (s: string, n: number) => s.padStart(n, '0').slice(-n);

/** kinesalite's own functions (before a patch, or kept by it). */
function originalsOf(db: KinesaliteDb): SequenceFunctions {
  const { parseSequence, stringifySequence, incrementSequence, partitionKeyToHashKey } = db;
  return db.ackstreamOriginals ?? { parseSequence, stringifySequence, incrementSequence, partitionKeyToHashKey };
}

export function fastSequences(db: KinesaliteDb): SequenceFunctions {
  const original = originalsOf(db);

  function parseSequence(seq: string): Record<string, unknown> {
    if (typeof seq !== 'string' || !DECIMAL.test(seq)) return original.parseSequence(seq);
    let n = BigInt(seq);
    if (n < POW_2_124) n += POW_2_124;
    const hex = n.toString(16);
    const version = n < POW_2_129 ? 0 : n > POW_2_185 && n < POW_2_185_NEXT ? parseInt(hex.slice(hex.length - 1), 16) : null;
    if (version === 2) {
      const seqIxHex = hex.slice(11, 27);
      let shardIxHex = hex.slice(38, 46);
      if (parseInt(seqIxHex[0]!, 16) > 7) throw new Error('Sequence index too high');
      if (parseInt(shardIxHex[0]!, 16) > 7) shardIxHex = '-' + shardIxHex;
      const shardCreateSecs = parseInt(hex.slice(1, 10), 16);
      if (shardCreateSecs >= 16025175000) throw new Error('Date too large: ' + shardCreateSecs);
      return {
        shardCreateTime: shardCreateSecs * 1000,
        seqIx: BigInt(`0x${seqIxHex}`).toString(),
        byte1: hex.slice(27, 29),
        seqTime: parseInt(hex.slice(29, 38), 16) * 1000,
        shardIx: parseInt(shardIxHex, 16),
        version,
      };
    }
    // Versions 0 and 1 (and unknown ones): as rare as they are old; kinesalite's own code.
    return original.parseSequence(seq);
  }

  function stringifySequence(obj: SequenceObject): string {
    const plainSeqIx = obj.seqIx == null || (typeof obj.seqIx === 'number' ? Number.isSafeInteger(obj.seqIx) : DECIMAL.test(String(obj.seqIx)));
    if ((obj.version != null && obj.version !== 2) || !plainSeqIx) return original.stringifySequence(obj);
    const hex = [
      '2',
      pad(Math.floor(obj.shardCreateTime / 1000).toString(16), 9),
      (obj.shardIx || 0).toString(16).slice(-1),
      pad(hexOf(obj.seqIx || 0), 16),
      obj.byte1 || '00',
      pad(Math.floor((obj.seqTime || obj.shardCreateTime) / 1000).toString(16), 9),
      db.shardIxToHex(obj.shardIx),
      '2',
    ].join('');
    // A negative or oversized field makes a string that is not hex: bignumber.js answers 'NaN' for it.
    if (!/^[0-9a-f]+$/.test(hex)) return original.stringifySequence(obj);
    return BigInt(`0x${hex}`).toString();
  }

  function incrementSequence(seqObj: string | SequenceObject, seqTime?: number | null): string {
    const o = (typeof seqObj === 'string' ? db.parseSequence(seqObj) : seqObj) as unknown as SequenceObject;
    return db.stringifySequence({
      shardCreateTime: o.shardCreateTime,
      ...(o.seqIx !== undefined ? { seqIx: o.seqIx } : {}),
      seqTime: seqTime || (o.seqTime! + 1000),
      shardIx: o.shardIx,
    });
  }

  function partitionKeyToHashKey(partitionKey: string): HashKey {
    return new HashKey(BigInt(`0x${createHash('md5').update(partitionKey, 'utf8').digest('hex')}`));
  }

  return { parseSequence, stringifySequence, incrementSequence, partitionKeyToHashKey };
}

/** Patches the kinesalite `db` module that `require('kinesalite')` loads (once); returns it. */
export function patchKinesaliteSequences(): KinesaliteDb {
  const db = require('kinesalite/db') as KinesaliteDb;
  if (db.ackstreamOriginals) return db;
  const originals = originalsOf(db);
  Object.assign(db, fastSequences(db), { ackstreamOriginals: originals });
  return db;
}
