/** The console's reader of Prometheus text, on exposition text in prom-client's format. */
import { bucketDelta, buckets, parsePrometheus, quantile, rate, sum } from '../ack-service/console/prometheus';

const text = (writes: number, fast: number, slow: number) => `# HELP ackstream_gateway_requests_total HTTP requests answered
# TYPE ackstream_gateway_requests_total counter
ackstream_gateway_requests_total{method="PUT",route="/v1/collections/:c/items/:id",status="202",service="gateway"} ${writes}
ackstream_gateway_requests_total{method="GET",route="/healthz",status="200",service="gateway"} 7
# TYPE ackstream_gateway_request_duration_seconds histogram
ackstream_gateway_request_duration_seconds_bucket{le="0.005",method="PUT",service="gateway"} ${fast}
ackstream_gateway_request_duration_seconds_bucket{le="0.01",method="PUT",service="gateway"} ${fast}
ackstream_gateway_request_duration_seconds_bucket{le="0.05",method="PUT",service="gateway"} ${fast + slow}
ackstream_gateway_request_duration_seconds_bucket{le="+Inf",method="PUT",service="gateway"} ${fast + slow}
ackstream_gateway_request_duration_seconds_sum{method="PUT",service="gateway"} 1.5
ackstream_gateway_request_duration_seconds_count{method="PUT",service="gateway"} ${fast + slow}
ackstream_processor_millis_behind_latest{shard="shardId-000000000001"} 250
note_with_escapes{path="a\\"b\\\\c"} 1
`;

describe('Prometheus text reader', () => {
  it('reads samples with labels, including escaped quotes and backslashes', () => {
    const s = parsePrometheus(text(10, 0, 0));
    expect(s.types.get('ackstream_gateway_request_duration_seconds')).toBe('histogram');
    expect(sum(s, 'ackstream_processor_millis_behind_latest', (l) => l.shard === 'shardId-000000000001')).toBe(250);
    expect(s.samples.find((x) => x.name === 'note_with_escapes')?.labels.path).toBe('a"b\\c');
  });

  it('gives a counter rate per second between two scrapes, for the labels asked', () => {
    const a = parsePrometheus(text(10, 0, 0), 1_000);
    const b = parsePrometheus(text(30, 0, 0), 3_000);
    expect(rate(a, b, 'ackstream_gateway_requests_total', (l) => l.method === 'PUT')).toBe(10);
    expect(rate(a, b, 'ackstream_gateway_requests_total', (l) => l.method === 'GET')).toBe(0);
    expect(rate(undefined, b, 'ackstream_gateway_requests_total')).toBeUndefined();
    expect(rate(a, b, 'no_such_metric_total')).toBeUndefined();
  });

  it('computes histogram quantiles from the buckets observed between scrapes, like histogram_quantile', () => {
    const a = parsePrometheus(text(0, 100, 0), 1_000);
    const b = parsePrometheus(text(0, 100, 100), 2_000);
    const delta = bucketDelta(buckets(a, 'ackstream_gateway_request_duration_seconds'), buckets(b, 'ackstream_gateway_request_duration_seconds'))!;
    // All 100 new observations fell in (0.01, 0.05]: the median interpolates to its middle.
    expect(quantile(0.5, delta)).toBeCloseTo(0.03, 6);
    // Since start, half were <= 5 ms.
    expect(quantile(0.25, buckets(b, 'ackstream_gateway_request_duration_seconds')!)).toBeCloseTo(0.0025, 6);
    expect(quantile(0.5, new Map([[Infinity, 0]]))).toBeUndefined();
  });
});
