/** The read API's CircuitBreaker (read-model/reader.ts), on an injected clock. */
import fc from 'fast-check';
import { CircuitBreaker } from '../../read-model/reader';

test('closed below the threshold; open at it, for openMs; then exactly one trial call', () => {
  const b = new CircuitBreaker(3, 1000);
  b.failed(0);
  b.failed(0);
  expect(b.allow(0)).toBe(true);
  expect(b.open).toBe(false);
  b.failed(100);
  expect(b.open).toBe(true);
  expect(b.allow(500)).toBe(false);
  expect(b.retryAfterSeconds(500)).toBe(1);
  expect(b.allow(1100)).toBe(true); // the trial
  expect(b.allow(1100)).toBe(false); // only one at a time
});

test('a successful trial closes it; a failed trial opens it again for openMs', () => {
  const b = new CircuitBreaker(2, 1000);
  b.failed(0);
  b.failed(0);
  expect(b.allow(1000)).toBe(true);
  b.failed(1000);
  expect(b.allow(1500)).toBe(false);
  expect(b.retryAfterSeconds(1500)).toBe(1);
  expect(b.allow(2000)).toBe(true);
  b.succeeded();
  expect(b.open).toBe(false);
  expect(b.allow(2000)).toBe(true);
  expect(b.allow(2000)).toBe(true);
});

test('retryAfterSeconds rounds up and is at least 1', () => {
  const b = new CircuitBreaker(1, 4500);
  b.failed(0);
  expect(b.retryAfterSeconds(0)).toBe(5);
  expect(b.retryAfterSeconds(4400)).toBe(1);
  expect(b.retryAfterSeconds(9999)).toBe(1);
});

test('property: it is open exactly when the last `threshold` outcomes were all failures', () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 5 }), fc.array(fc.boolean(), { maxLength: 30 }), (threshold, outcomes) => {
    const b = new CircuitBreaker(threshold, 1000);
    let run = 0;
    for (const ok of outcomes) {
      if (ok) {
        b.succeeded();
        run = 0;
      } else {
        b.failed(0);
        run++;
      }
    }
    expect(b.open).toBe(run >= threshold);
    expect(b.allow(0)).toBe(run < threshold);
  }));
});
