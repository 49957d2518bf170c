/**
 * Prometheus metrics of one ack-service instance. A registry per instance (not prom-client's
 * global one), so two instances in one process (tests, benches) do not share counters.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export class AckMetrics {
  readonly registry = new Registry();
  readonly pushed: Counter;
  readonly pushLatency: Histogram;
  readonly resumes: Counter;
  readonly resets: Counter<'reason'>;
  readonly slowClientCloses: Counter;
  readonly deadTerminations: Counter;
  readonly refused: Counter<'status'>;
  readonly badInput: Counter<'code'>;

  /** `takePushed` gives the acks pushed since it was last called (counted without prom-client on the hot path). */
  constructor(openConnections: () => number, takePushed: () => number = () => 0) {
    const registers = [this.registry];
    new Gauge({
      name: 'ackstream_ack_connections_open',
      help: 'Open ack WebSocket connections.',
      registers,
      collect() {
        this.set(openConnections());
      },
    });
    this.pushed = new Counter({
      name: 'ackstream_acks_pushed_total',
      help: 'Acks sent to WebSocket clients (rate() gives acks/s).',
      registers,
      collect() {
        const n = takePushed();
        if (n > 0) this.inc(n);
      },
    });
    this.pushLatency = new Histogram({
      name: 'ackstream_ack_push_latency_seconds',
      help: 'From the ack\'s "at" (when it was decided) to the send on the WebSocket.',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.resumes = new Counter({ name: 'ackstream_ack_resumes_total', help: 'Connections opened with ?after=<cursor>.', registers });
    this.resets = new Counter({ name: 'ackstream_ack_resets_total', help: 'Reset messages sent (cursor expired or history lost).', labelNames: ['reason'], registers });
    this.slowClientCloses = new Counter({
      name: 'ackstream_ack_slow_client_closes_total',
      help: 'Connections closed with 1013 because the client did not read and the send buffer passed its bound.',
      registers,
    });
    this.deadTerminations = new Counter({ name: 'ackstream_ack_dead_terminations_total', help: 'Connections terminated for missing a heartbeat pong.', registers });
    this.refused = new Counter({ name: 'ackstream_ack_upgrades_refused_total', help: 'Upgrades answered over plain HTTP instead (401, 429, ...).', labelNames: ['status'], registers });
    this.badInput = new Counter({ name: 'ackstream_ack_bad_client_messages_total', help: 'Client messages refused, by WebSocket close code or "error".', labelNames: ['code'], registers });
  }
}
