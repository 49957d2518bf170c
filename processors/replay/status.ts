/** Status: every projection's deployed versions, which is live, rebuild progress, and lag. */
import type { Pool } from 'pg';
import { defaultRecord, type ProjectionRecord } from '../../core/projections';
import { projectionNames } from '../../core/projections';
import { logHead } from './fold';
import type { ReplayDeps } from './rebuild';

export interface StatusReport {
  logHead: string;
  lastEventAt: string | null;
  projections: ProjectionRecord[];
  consumers: Array<{ consumer: string; shards: number; lastCheckpointAt: string | null; ageSeconds: number | null }>;
}

export async function status(deps: ReplayDeps): Promise<StatusReport> {
  const stored = await deps.registry.list();
  const names = new Set([...projectionNames(), ...stored.map((r) => r.name)]);
  const projections = [...names].sort().map((n) => stored.find((r) => r.name === n) ?? defaultRecord(n, { itemsTable: deps.itemsTable, redisPrefix: deps.redisPrefix }));
  return { logHead: await logHead(deps.pool), lastEventAt: await lastEventAt(deps.pool), projections, consumers: await consumers(deps.pool) };
}

async function lastEventAt(pool: Pool): Promise<string | null> {
  const r = await pool.query<{ at: Date | null }>('SELECT recorded_at AS at FROM events ORDER BY position DESC LIMIT 1');
  return r.rows[0]?.at?.toISOString() ?? null;
}

async function consumers(pool: Pool) {
  const r = await pool.query<{ consumer: string; shards: string; last: Date | null }>(
    'SELECT consumer, count(*)::text AS shards, max(updated_at) AS last FROM checkpoints GROUP BY consumer ORDER BY consumer',
  );
  return r.rows.map((x) => ({
    consumer: x.consumer, shards: Number(x.shards), lastCheckpointAt: x.last?.toISOString() ?? null,
    ageSeconds: x.last ? Math.round((Date.now() - x.last.getTime()) / 1000) : null,
  }));
}

export function formatStatus(s: StatusReport): string {
  const lines: string[] = [];
  lines.push(`event log head: position ${s.logHead}${s.lastEventAt ? ` (last event ${s.lastEventAt})` : ''}`);
  for (const p of s.projections) {
    lines.push(`projection ${p.name}: live v${p.live}`);
    for (const v of Object.values(p.versions).sort((a, b) => a.n - b.n)) {
      let extra = '';
      if (v.state === 'building') {
        const done = v.done ?? 0;
        const total = v.total;
        const behind = total === undefined ? 'waiting for head' : `${done}/${total} events (${total ? ((100 * done) / total).toFixed(1) : '100.0'}%), head ${v.head}, lag ${Number(s.logHead) - Number(v.head ?? s.logHead)} positions past the head (projected live)`;
        extra = ` — ${behind}, last progress ${v.progressAt ?? '-'}`;
      } else if (v.state === 'kept') extra = ` — kept for rollback until ${v.retireAt}`;
      else if (v.state === 'live' && v.switchedAt) extra = ` — live since ${v.switchedAt}`;
      else if (v.state === 'retired') extra = ` — retired ${v.retiredAt ?? ''}`;
      lines.push(`  v${v.n} ${v.state.padEnd(8)} code v${v.code} table ${v.itemsTable} redis ${v.redisPrefix}${extra}`);
    }
  }
  for (const c of s.consumers) {
    lines.push(`consumer ${c.consumer}: ${c.shards} shards, last checkpoint ${c.lastCheckpointAt ?? '-'} (${c.ageSeconds ?? '-'} s ago)`);
  }
  return lines.join('\n');
}
