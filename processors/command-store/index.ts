/** The command store: its port (port.ts) and the PostgreSQL adapter (pg/). */
export * from './port';
export { PgCommandStore } from './pg/command-store';
