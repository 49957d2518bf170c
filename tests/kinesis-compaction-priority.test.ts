/**
 * LOCAL_KINESIS_COMPACTION (issue #20): the Kinesis emulator's LevelDB compactions grow with the
 * stream's data, and the emulator answers the gateway's PutRecords (the path to every 202). With
 * `idle` (the default) the thread LevelDB starts for its flushes and compactions runs in Linux's
 * idle scheduling class (idleLaterThreads in scripts/local-stack.ts; `npm start` sets it up in its
 * own process before the emulator opens its store, scripts/emulator-child.ts does the same).
 * Checked on the real kinesalite on disk, written to through the AWS SDK past LevelDB's 4 MB write
 * buffer, with each thread's scheduling class read from /proc.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CreateStreamCommand, PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { createKinesis } from '../core/aws';
import { emulatorProcess, freePort, localEnv, stopChild, waitStreamActive } from '../scripts/local-stack';
import { threadsOf } from './helpers/scheduling';

const linux = process.platform === 'linux' ? test : test.skip;

const threadClasses = (pid: number) => threadsOf(pid).map((t) => t.idle);

let root: string;
beforeAll(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'kinesis-compaction-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A Kinesis emulator in its own process on a new store, with LOCAL_KINESIS_COMPACTION = `setting`, written past LevelDB's write buffer; its threads' classes after that. */
async function classesAfterWrites(setting: 'idle' | 'normal'): Promise<{ threadsBefore: number; classes: boolean[] }> {
  const saved = process.env.LOCAL_KINESIS_COMPACTION;
  process.env.LOCAL_KINESIS_COMPACTION = setting;
  const port = await freePort();
  let emulator: Awaited<ReturnType<typeof emulatorProcess>>;
  try {
    emulator = await emulatorProcess('kinesis', port, path.join(root, setting));
  } finally {
    if (saved === undefined) delete process.env.LOCAL_KINESIS_COMPACTION;
    else process.env.LOCAL_KINESIS_COMPACTION = saved;
  }
  const kinesis = createKinesis({ region: 'us-east-1', endpoint: emulator.endpoint });
  const threadsBefore = threadClasses(emulator.child.pid!).length;
  try {
    await kinesis.send(new CreateStreamCommand({ StreamName: 's', ShardCount: 2 }));
    await waitStreamActive(kinesis, 's');
    // 8 MB in 100 KB calls: past LevelDB's 4 MB write buffer, so it flushes (and compacts) in a thread it starts now.
    const data = Buffer.alloc(1000, 7);
    for (let call = 0; call < 80; call++) {
      await kinesis.send(new PutRecordsCommand({ StreamName: 's', Records: Array.from({ length: 100 }, (_, j) => ({ PartitionKey: `k${call}-${j}`, Data: data })) }));
    }
    // The new thread is seen within a second or so (checked every second).
    let classes = threadClasses(emulator.child.pid!);
    for (let i = 0; i < 30 && (setting === 'idle' ? !classes.some(Boolean) : true); i++) {
      await new Promise((r) => setTimeout(r, 100));
      classes = threadClasses(emulator.child.pid!);
    }
    return { threadsBefore, classes };
  } finally {
    kinesis.destroy();
    await stopChild(emulator.child);
  }
}

describe('LOCAL_KINESIS_COMPACTION: the Kinesis emulator compacts on spare CPU', () => {
  test('idle by default, normal on request, anything else refused', () => {
    expect(localEnv({}).LOCAL_KINESIS_COMPACTION).toBe('idle');
    expect(localEnv({ LOCAL_KINESIS_COMPACTION: 'normal' }).LOCAL_KINESIS_COMPACTION).toBe('normal');
    expect(() => localEnv({ LOCAL_KINESIS_COMPACTION: 'fast' })).toThrow(/LOCAL_KINESIS_COMPACTION/);
  });

  linux('idle: the thread LevelDB starts for its compactions is in the idle class, the threads that answer requests are not', async () => {
    const { threadsBefore, classes } = await classesAfterWrites('idle');
    expect(classes).toHaveLength(threadsBefore + 1);
    expect(classes.filter(Boolean)).toHaveLength(1);
    expect(classes.filter((idle) => !idle).length).toBeGreaterThan(4);
  });

  linux('normal: every thread keeps the process’s scheduling class', async () => {
    const { threadsBefore, classes } = await classesAfterWrites('normal');
    expect(classes).toHaveLength(threadsBefore + 1); // LevelDB's thread among them
    expect(classes.filter(Boolean)).toHaveLength(0);
  });
});
