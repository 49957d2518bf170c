/** `npm run test:faults`: the full fault runs (tests/faults/*.faults.ts) plus the small one, one at a time. */
const base = require('./jest.config');

/** @type {import('jest').Config} */
module.exports = {
  ...base,
  testMatch: ['<rootDir>/tests/faults/**/*.faults.ts', '<rootDir>/tests/faults/**/*.test.ts'],
  testTimeout: 30 * 60_000,
  maxWorkers: 1,
};
