/**
 * acks bench, server side: one ack-service instance in its own process (as in production), started
 * by bench/scenarios/acks.ts with `fork` (IPC). Run with --expose-gc so memory per connection is
 * measured after a full GC; profiles the measured window when ACK_BENCH_PROFILE is set.
 *
 * IPC: -> { type: 'ready', url } ; <- { type: 'mem' } -> { type: 'mem', rss, heapUsed, connections }
 *      <- { type: 'cpu', profile?: 'start' | 'stop' } -> { type: 'cpu', userMs, systemMs } ; <- { type: 'stop' }.
 */
import { loadConfig } from '../../../core/config';
import { AckConfig, startAckService } from '../../../ack-service/main';
import { windowProfiler } from './profile';

async function main() {
  const svc = await startAckService(loadConfig(AckConfig, {
    AUTH_SECRET: process.env.ACK_BENCH_SECRET!,
    REDIS_URL: process.env.ACK_BENCH_REDIS_URL!,
    REDIS_PREFIX: process.env.ACK_BENCH_PREFIX!,
    ACK_PORT: '0',
    LOG_LEVEL: 'silent',
    HEARTBEAT_MS: '30000',
    MAX_CONNECTIONS_PER_PRINCIPAL: '20',
  }));
  const gc = (global as { gc?: () => void }).gc;
  const profiler = windowProfiler('server');
  process.on('message', async (m: { type: string; profile?: 'start' | 'stop' }) => {
    if (m.type === 'mem') {
      // Two passes: the first may only promote, the second frees what the first left behind.
      gc?.();
      gc?.();
      const u = process.memoryUsage();
      process.send!({ type: 'mem', rss: u.rss, heapUsed: u.heapUsed, external: u.external, gc: Boolean(gc) });
    } else if (m.type === 'cpu') {
      const c = process.cpuUsage();
      if (m.profile === 'stop') await profiler.stop();
      if (m.profile === 'start') await profiler.start();
      process.send!({ type: 'cpu', userMs: c.user / 1000, systemMs: c.system / 1000 });
    } else if (m.type === 'stop') {
      svc.close().finally(() => process.exit(0));
    }
  });
  process.send!({ type: 'ready', url: svc.url });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
